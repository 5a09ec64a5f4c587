// expresso-xai Explorer: the front-end of expresso_xai.widgets.Explorer.
//
// A plain ES module for anywidget (no build step, nothing from a CDN). The kernel sends
// everything once in the `_data` trait (the Payload below). After that, moving between
// frames never waits for the kernel, except on a long cube (`window` in the payload):
// then the page holds one window of frames at a time and asks the kernel for another
// (a custom message answered with binary buffers, the WindowMessage below) when the
// shown frame leaves it, and for the next one ahead while playing. `initialize` runs once per model: it decodes the
// frames into ImageBitmaps and the pixel maps and labels into typed arrays, shared by all
// views of that model, and caches outlines per frame. `render` runs once per view and
// composes small components, each `{node, update, dispose}`; `update(key)` is told which
// trait changed, "all" for the first draw and "ready" once the decode and plotly.js are
// in. The same module runs in the standalone HTML from Explorer.save_html(), driven by
// `standaloneModel` instead of a kernel.

/**
 * The `_data` trait: everything the page needs, encoded once by `payload.build` in
 * expresso_xai/widgets/payload.py. This is its one description; keep the two in step.
 * Python decides the conventions (value names, signed or not, label encoding); this
 * module only follows them. NaN travels as null (JSON has none).
 *
 * @typedef {object} Payload
 * @property {number} version                 1
 * @property {string} title
 * @property {number[]|Run} times            a frame index of the video per column (cube.time)
 * @property {(number|null)[]|Run} seconds    per column
 * @property {number} fps                     playback rate (real time, also for strided cubes)
 * @property {string[]} explainers
 * @property {string[]} regions
 * @property {Object<string, string>} colours region -> "#rrggbb"
 * @property {boolean[]|Flags} face_found     per column
 * @property {number|(number|null)[]|null} prediction  per column, or per heat column (bin mean) with `window`
 * @property {[string, string][]} values      value name -> label, in menu order (cube.views.VALUE_LABELS)
 * @property {Object<string, boolean>} signed explainer -> its values go below zero (cube.views.is_signed)
 * @property {Object<string, Object<string, (number|null)[][]>>} heat  explainer -> value -> rows (region, column);
 *   a column per frame, or per `window.step` frames keeping the bin's peak (largest |value|)
 * @property {number[]|Run|null} heat_times   the first frame of each heat column when binned, else null
 * @property {Window|null} window             null when everything is in this payload
 * @property {Agreement|null} agreement       null with one explainer (per_frame binned like heat)
 * @property {Overlay|null} overlay           null without pixel maps
 * @property {Labels|null} labels             null without region_label or without overlay
 * @property {Frames|null} frames             null without a video
 * @property {[number, number]} display       the player canvas (height, width)
 * @property {{diverging: number[][], sequential: number[][]}} luts  256 [r, g, b] each
 * @property {string[]} messages              what is missing and how to get it
 * @property {string[]} cautions              what the numbers must be read with (cube.views.range_caution)
 * @property {Evaluation|null} evaluation     null without an evaluation dataset
 *
 * @typedef {object} Overlay
 * @property {[number, number, number]} shape (time, h, w) of each explainer's codes
 * @property {Object<string, number>} scale   explainer -> the value of code ±1
 * @property {"deflate"|"webp"|"window"} encoding  how `data` holds the codes ("window": not
 *   here, the kernel sends them a window at a time)
 * @property {Object<string, string|string[]>|null} data  explainer -> base64 deflated uint8 codes
 *   (payload.quantise): signed 128 + 127·v, magnitudes 255·v, v = value / scale clipped;
 *   "webp": base64 lossy WebP images, each up to 64 frames stacked vertically, codes in each pixel's red
 * @property {Object<string, {max: number, mean: number}>|null} error  explainer -> |code error| in units of scale
 * @property {number} transparent             codes within this of zero are drawn transparent (lossy noise)
 *
 * A long cube's (`window`) per-column parts are compacted (stream.compact_columns) and
 * expanded by `expandColumns`:
 * @typedef {object} Run                      column k is start + k·step (regular times or seconds)
 * @property {number} start
 * @property {number} step
 * @property {number} count
 *
 * @typedef {object} Flags                    booleans as run lengths, alternating from `first`
 * @property {boolean} first
 * @property {number[]} runs
 *
 * @typedef {object} Window
 * @property {number} size                    frames per window (the last may be shorter)
 * @property {number} count                   windows in the video
 * @property {number} step                    frames per heat column
 *
 * @typedef {object} Labels
 * @property {"index"|"bits"} encoding        regions.label_encoding: region index, or bit r for region r
 * @property {1|2} bytes                      bytes per label (regions.label_dtype), little-endian
 * @property {string|null} data               base64 deflated (time, h, w) labels of the cube's regions
 *   (null with `window`: they come with each window)
 *
 * @typedef {object} Frames
 * @property {[number, number]} size          (height, width)
 * @property {boolean} cropped                cropped like the model saw them
 * @property {"jpeg"|"webp"} format           the images' format
 * @property {string[]|null} jpeg             base64 image per column (null with `window`)
 *
 * The kernel's answer to {type: "window", index}: a header and binary buffers.
 * @typedef {object} WindowMessage
 * @property {"window"} type
 * @property {number} index
 * @property {number} start                   first column (cube position) of the window
 * @property {number} stop                    one past its last column
 * @property {Object<string, number>} overlays  explainer -> buffer of its deflated uint8 codes
 * @property {number|null} labels             buffer of the deflated labels
 * @property {number} heat                    buffer of float32 LE values (explainer, value, region, column)
 * @property {{buffer: number, lengths: number[]}|null} frames  JPEGs end to end in one buffer
 * @property {boolean} partial               only the columns near the one asked for (stream.head_bounds);
 *   the whole window follows
 *
 * @typedef {object} Agreement
 * @property {(number|null)[][]} matrix       Spearman over region × time, explainer × explainer
 * @property {(number|null)[]} per_frame      mean pairwise Spearman over regions, per column
 *
 * The evaluation panel (payload `evaluation`, made by expresso_xai/widgets/evaluation.py,
 * which decides the arrows, the best rows, the decimals and the curves' labels and colours):
 * @typedef {object} Evaluation
 * @property {ScoreTable} table
 * @property {Curves|null} curves             null when the evaluation has no perturbation curves
 *
 * @typedef {object} ScoreTable
 * @property {string[]} explainers            one row each, in the cube's order
 * @property {MetricColumn[]} metrics         one column each
 * @property {(number|null)[][]} score        (explainer, metric)
 * @property {(boolean|null)[][]} passed      (explainer, metric): pass, fail, or no verdict
 * @property {number[][]} best                per metric, the rows with the best score (none without a direction)
 * @property {number} digits                  decimals shown
 *
 * @typedef {object} MetricColumn
 * @property {string} name                    the metric coordinate
 * @property {string} label                   its header under its group
 * @property {string} group                   the metric group (consecutive columns share one)
 * @property {"higher"|"lower"|"neither"} better
 * @property {string} arrow                   the direction as shown ("↑", "↓" or "")
 * @property {string} title                   definition, reference, direction, threshold (plain text)
 *
 * @typedef {object} Curves
 * @property {[string, string][]} kinds       kind -> its x-axis label, in menu order
 * @property {[string, string, string][]} orders  order -> label, colour
 * @property {number[]} steps                 fraction of units perturbed
 * @property {string} label                   the y axis (what the curve measures)
 * @property {Object<string, Object<string, Object<string, (number|null)[]>>>} values
 *   explainer -> kind -> order -> one value per step
 * @property {Object<string, Object<string, {lower: (number|null)[], upper: (number|null)[]}>>|null} ci
 *   explainer -> kind -> the random order's band, or null
 */

const NO_FACE_TOP = "none (no face in this frame)";
const SYNC_INTERVAL_MS = 250; // while playing, tell the kernel the frame at most this often
const PLOT_WIDTH = 640;
const PLOT_CONFIG = { displaylogo: false, responsive: false, modeBarButtonsToRemove: ["lasso2d", "select2d"] };
const COLOUR_MODES = [["auto", "auto"], ["signed", "signed"], ["magnitude", "magnitude"]];
const SPEEDS = [["0.25", "¼×"], ["0.5", "½×"], ["1", "1×"], ["2", "2×"], ["4", "4×"]];
const TRAITS = ["frame", "method", "value", "colour", "opacity", "outlines", "region", "playing", "speed"];
// what each update redraws: the canvases and labels, and the plotly figures
const PICTURE = new Set(["all", "ready", "window", "frame", "method", "value", "colour", "opacity", "outlines", "region"]);
const FIGURE = new Set(["ready", "method", "value", "colour"]);

// Whether a pixel's label puts it in region r, for each encoding the payload can state.
const REGION_TESTS = {
  index: (label, r) => label === r,
  bits: (label, r) => ((label >> r) & 1) === 1,
};

// --- loading ------------------------------------------------------------------------

let plotlyPromise = null;

function loadPlotly(model) {
  if (globalThis.Plotly && globalThis.Plotly.newPlot) return Promise.resolve(globalThis.Plotly);
  if (!plotlyPromise) {
    // plotly.js from the plotly Python package, sent by the kernel: evaluated as a
    // CommonJS module so it neither needs the network nor touches window.Plotly.
    plotlyPromise = Promise.resolve().then(() => {
      const module = { exports: {} };
      new Function("module", "exports", model.get("_plotly"))(module, module.exports);
      return module.exports;
    });
  }
  return plotlyPromise;
}

function bytesOf(base64) {
  const text = atob(base64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

async function inflateBytes(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const inflate = (base64) => inflateBytes(bytesOf(base64));

function labelArray(labels, raw) {
  if (!REGION_TESTS[labels.encoding]) throw new Error(`unknown region label encoding ${labels.encoding}`);
  return labels.bytes === 2 ? new Uint16Array(raw.buffer, raw.byteOffset, raw.length / 2) : raw;
}

/** Lossy codes: the red of each pixel of WebP images of frames stacked vertically. */
async function decodeWebpCodes(overlay, images) {
  const [T, oh, ow] = overlay.shape;
  const codes = new Uint8Array(T * oh * ow);
  let offset = 0;
  for (const b64 of images) {
    const blob = new Blob([bytesOf(b64)], { type: "image/webp" });
    // no colour management: the pixels are codes, not colours
    const bitmap = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
    const canvas = h("canvas", { width: String(bitmap.width), height: String(bitmap.height) });
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(bitmap, 0, 0);
    const rgba = context.getImageData(0, 0, bitmap.width, bitmap.height).data;
    for (let p = 0; p < rgba.length / 4; p++) codes[offset + p] = rgba[4 * p];
    offset += rgba.length / 4;
  }
  return codes;
}

// How the payload's overlay codes are decoded, for each encoding it can state.
const OVERLAY_DECODERS = { deflate: (overlay, encoded) => inflate(encoded), webp: decodeWebpCodes };

const imagesOf = (blobs, type) => Promise.all(blobs.map((blob) => createImageBitmap(new Blob([blob], { type }))));

/** A payload that holds everything, as one window over every column. */
async function decodeAll(data) {
  const out = { index: 0, start: 0, stop: data.times.length, overlays: {}, labels: null, bitmaps: null, heat: null };
  if (data.window) return null;
  if (data.overlay) {
    for (const name of data.explainers) {
      const encoded = data.overlay.data[name];
      out.overlays[name] = await OVERLAY_DECODERS[data.overlay.encoding](data.overlay, encoded);
    }
  }
  if (data.labels) out.labels = labelArray(data.labels, await inflate(data.labels.data));
  if (data.frames) out.bitmaps = await imagesOf(data.frames.jpeg.map(bytesOf), `image/${data.frames.format || "jpeg"}`);
  return out;
}

const bufferBytes = (b) => (b instanceof ArrayBuffer ? new Uint8Array(b) : new Uint8Array(b.buffer, b.byteOffset, b.byteLength));

/** A window from the kernel (a WindowMessage and its buffers). */
async function decodeWindow(data, message, buffers) {
  const bytes = buffers.map(bufferBytes);
  const { index, start, stop } = message;
  const out = { index, start, stop, overlays: {}, labels: null, bitmaps: null };
  for (const [name, b] of Object.entries(message.overlays)) out.overlays[name] = await inflateBytes(bytes[b]);
  if (message.labels != null) out.labels = labelArray(data.labels, await inflateBytes(bytes[message.labels]));
  out.heat = new Float32Array(bytes[message.heat].slice().buffer); // a copy: aligned for Float32Array
  if (message.frames) {
    const all = bytes[message.frames.buffer];
    let at = 0;
    out.bitmaps = await imagesOf(message.frames.lengths.map((n) => all.subarray(at, (at += n))), "image/jpeg");
  }
  return out;
}

// --- small helpers -------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

function select(cls, options, current) {
  const node = h("select", { class: cls });
  for (const [value, label] of options) {
    const option = h("option", { value, text: label });
    if (value === current) option.selected = true;
    node.append(option);
  }
  return node;
}

/** A name as plotly text: plotly reads a subset of HTML in labels and drops other tags,
 * so "<", ">" and "&" go as entities and the name shows as written. */
function plotText(text) {
  return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function listen(node, event, f) {
  node.addEventListener(event, f);
  return () => node.removeEventListener(event, f);
}

function rgb(c) {
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

function colourscale(lut) {
  const stops = [];
  for (let k = 0; k <= 10; k++) stops.push([k / 10, rgb(lut[Math.round((k / 10) * 255)])]);
  return stops;
}

function fmt(x) {
  if (x == null || !isFinite(x)) return "–";
  const a = Math.abs(x);
  return a !== 0 && (a < 1e-3 || a >= 1e4) ? x.toExponential(2) : x.toPrecision(3);
}

function finiteMax(rows, skip = -1) {
  let m = 0;
  rows.forEach((row, r) => {
    if (r === skip) return;
    for (const v of row) if (v != null && isFinite(v) && Math.abs(v) > m) m = Math.abs(v);
  });
  return m || 1;
}

// --- components: each is {node, update(key), dispose()} ------------------------------

/** A component of fixed nodes; `display: contents` keeps them in the parent's layout. */
function part(...nodes) {
  return { node: h("div", { class: "xe-part" }, ...nodes), update() {}, dispose() {} };
}

/** `parts` appended to `node`, updated and disposed together; update resolves when
 * every part's (possibly asynchronous) update has. */
function compose(node, parts) {
  for (const p of parts) node.append(p.node);
  return {
    node,
    update: (key) => Promise.all(parts.map((p) => p.update(key))),
    dispose: () => parts.forEach((p) => p.dispose()),
  };
}

// --- the standalone model (HTML export): the anywidget model API without a kernel ------

export function standaloneModel(state) {
  const handlers = new Map();
  return {
    get: (key) => state[key],
    set(key, value) {
      if (state[key] === value) return;
      state[key] = value;
      for (const f of handlers.get(`change:${key}`) || []) f();
    },
    save_changes() {},
    send() {},
    on(event, f) {
      for (const name of event.split(" ")) {
        if (!handlers.has(name)) handlers.set(name, []);
        handlers.get(name).push(f);
      }
    },
    off(event, f) {
      for (const name of (event || "").split(" ")) {
        const list = handlers.get(name) || [];
        if (list.includes(f)) list.splice(list.indexOf(f), 1);
      }
    },
  };
}

// --- per model: decoded once, shared by the model's views ----------------------------

/** A column run `{start, step, count}` (stream.regular_run) as the array it stands for. */
function expandRun(run) {
  if (Array.isArray(run)) return run;
  return Array.from({ length: run.count }, (_, k) => run.start + k * run.step);
}

/** Run lengths `{first, runs}` (stream.run_lengths) as one boolean per column. */
function expandFlags(flags) {
  if (Array.isArray(flags)) return flags;
  const out = [];
  flags.runs.forEach((n, k) => {
    for (let j = 0; j < n; j++) out.push(k % 2 === 0 ? flags.first : !flags.first);
  });
  return out;
}

/** The payload with its compacted per-column parts (a long cube's) as plain arrays. */
function expandColumns(raw) {
  return { ...raw, times: expandRun(raw.times), seconds: expandRun(raw.seconds), face_found: expandFlags(raw.face_found),
    heat_times: raw.heat_times && expandRun(raw.heat_times) };
}

function createShared(model) {
  /** @type {Payload} */
  const data = expandColumns(model.get("_data"));
  const shared = {
    data,
    position: new Map(data.times.map((t, i) => [t, i])),
    win: null, // the window of decoded frames, maps and labels the shown frame is in, or null
    inRegion: data.labels ? REGION_TESTS[data.labels.encoding] : null,
    outlines: new Map(),
    palettes: new Map(),
    scratch: data.overlay ? createScratch(data.overlay.shape) : null,
    plotly: null,
    windows: data.window ? createWindows(model, data) : null,
  };
  // A long cube: plotly.js (seconds of parsing in a fresh page) waits until the first
  // window is painted, so the frame shows first and the plots follow.
  const plotly = shared.windows ? shared.windows.first.then(afterPaint).then(() => loadPlotly(model)) : loadPlotly(model);
  shared.ready = Promise.all([decodeAll(data), plotly]).then(([decoded, plotly]) => {
    shared.win = decoded;
    shared.plotly = plotly;
  });
  return shared;
}

/** Resolves once the browser has painted what was drawn before it was called. */
const afterPaint = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));

const WINDOWS_KEPT = 3;
const OUTLINES_KEPT = 2000; // the shown window, the one ahead and the one before

/** The windows of a long cube: asked of the kernel once each, kept while near the shown
 * frame; `show(i, playing)` makes column i's window current (or asks for it), and asks
 * for the next one ahead while playing. Views are told with `listeners` when one lands. */
function createWindows(model, data) {
  const { size, count } = data.window;
  const held = new Map();
  const asked = new Set();
  const listeners = new Set();
  let wanted = -1;
  let landed = null;
  const first = new Promise((resolve) => { landed = resolve; });
  // `column`: the frame the user waits for; the kernel then sends that part of the
  // window first (a WindowMessage with `partial`) when the window is not made yet.
  const ask = (k, column) => {
    if (k < 0 || k >= count || (held.has(k) && !held.get(k).partial) || asked.has(k)) return;
    asked.add(k);
    model.send(column == null ? { type: "window", index: k } : { type: "window", index: k, column });
  };
  const onMessage = (message, buffers) => {
    if (!message || message.type !== "window") return;
    decodeWindow(data, message, buffers || []).then((win) => {
      win.partial = !!message.partial;
      const whole = held.get(win.index);
      if (win.partial && whole && !whole.partial) return; // the whole window came first
      if (!win.partial) asked.delete(win.index);
      held.set(win.index, win);
      for (const k of [...held.keys()]) if (held.size > WINDOWS_KEPT && Math.abs(k - wanted) > 1) held.delete(k);
      listeners.forEach((f) => f());
      landed();
    });
  };
  model.on("msg:custom", onMessage);
  return {
    listeners,
    first,
    windowOf: (i) => Math.floor(i / size),
    show(shared, i, playing) {
      wanted = Math.floor(i / size);
      ask(wanted, i);
      if (playing) ask(wanted + 1);
      shared.win = held.get(wanted) || null;
      return shared.win;
    },
  };
}

/** A canvas of the pixel maps' size to paint codes into before scaling them up. */
function createScratch([, oh, ow]) {
  const canvas = document.createElement("canvas");
  canvas.width = ow;
  canvas.height = oh;
  const context = canvas.getContext("2d");
  const image = context.createImageData(ow, oh);
  return { canvas, context, image, pixels: new Uint32Array(image.data.buffer) };
}

/** The RGBA of each uint8 code as one Uint32 (the byte order of ImageData's buffer). */
function overlayPalette(shared, lut, signed, diverging) {
  const key = `${signed} ${diverging}`;
  const transparent = shared.data.overlay.transparent || 0;
  if (shared.palettes.has(key)) return shared.palettes.get(key);
  const rgba = new Uint8ClampedArray(256 * 4);
  for (let q = 0; q < 256; q++) {
    const v = signed ? Math.max(-1, Math.min(1, (q - 128) / 127)) : q / 255; // payload.decode
    const magnitude = Math.abs(q - (signed ? 128 : 0)) <= transparent ? 0 : Math.abs(v);
    const c = lut[diverging ? Math.round((v + 1) * 127.5) : Math.round(magnitude * 255)];
    // transparent at 0, opaque from 44% of the scale up; the square root keeps weak
    // but real attribution visible.
    rgba.set([c[0], c[1], c[2], Math.min(255, Math.round(383 * Math.sqrt(magnitude)))], 4 * q);
  }
  shared.palettes.set(key, new Uint32Array(rgba.buffer));
  return shared.palettes.get(key);
}

/** The outline of the pixels where `inside(x, y)`, scaled by (kx, ky); null if none. */
function regionOutline(inside, ow, oh, kx, ky) {
  const path = new Path2D();
  const edge = (x0, y0, x1, y1) => {
    path.moveTo(x0 * kx, y0 * ky);
    path.lineTo(x1 * kx, y1 * ky);
  };
  let any = false;
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      if (!inside(x, y)) continue;
      any = true;
      if (!inside(x + 1, y)) edge(x + 1, y, x + 1, y + 1);
      if (!inside(x - 1, y)) edge(x, y, x, y + 1);
      if (!inside(x, y + 1)) edge(x, y + 1, x + 1, y + 1);
      if (!inside(x, y - 1)) edge(x, y, x + 1, y);
    }
  }
  return any ? path : null;
}

/** Each region's outline at column i (null for the background), cached per model. */
function outlinesOf(shared, i) {
  if (shared.outlines.has(i)) return shared.outlines.get(i);
  const { data, inRegion } = shared;
  const [, oh, ow] = data.overlay.shape;
  const [DH, DW] = data.display;
  const at = i - shared.win.start;
  const labels = shared.win.labels.subarray(at * oh * ow, (at + 1) * oh * ow);
  const paths = data.regions.map((name, r) => {
    if (name === "background") return null;
    const inside = (x, y) => x >= 0 && y >= 0 && x < ow && y < oh && inRegion(labels[y * ow + x], r);
    return regionOutline(inside, ow, oh, DW / ow, DH / oh);
  });
  if (shared.outlines.size > OUTLINES_KEPT) shared.outlines.clear(); // a long video: bounded memory
  shared.outlines.set(i, paths);
  return paths;
}

// --- per view: the state the components read and write -------------------------------

function createView(model, shared, root) {
  const { data } = shared;
  const T = data.times.length;
  const view = {
    model, shared, data, T,
    index: () => shared.position.get(model.get("frame")) ?? 0,
    set(key, value, sync = true) {
      model.set(key, value);
      if (sync) model.save_changes();
    },
    seek: (i, sync = true) => view.set("frame", data.times[Math.max(0, Math.min(T - 1, i))], sync),
    togglePlaying: () => view.set("playing", !model.get("playing")),
    diverging(name) {
      const mode = model.get("colour");
      return mode === "signed" || (mode === "auto" && !!data.signed[name]);
    },
    lut: (name) => (view.diverging(name) ? data.luts.diverging : data.luts.sequential),
    rows: (name) => data.heat[name][model.get("value")], // the heatmap's columns (binned on a long cube)
    columns: data.heat_times || data.times,
    /** The value of region r at column i (exact, also on a long cube; null while its
     * window is on its way). */
    valueAt(name, r, i) {
      if (!data.window) return data.heat[name][model.get("value")][r][i];
      const win = inWindow(shared, i);
      if (!win) return null;
      const v = data.values.findIndex(([value]) => value === model.get("value"));
      const n = win.stop - win.start;
      const x = win.heat[((data.explainers.indexOf(name) * data.values.length + v) * data.regions.length + r) * n + i - win.start];
      return Number.isFinite(x) ? x : null;
    },
    // follow JupyterLab's theme (dark themes too): the colour the widget's text has
    textColour: () => getComputedStyle(root).color || "#222",
  };
  return view;
}

/** The face region with the highest value at column i; on a frame without a face its
 * regions have no pixels, and the "top" of their zeros would be a made-up answer. */
function topRegion(view, name, i) {
  if (!view.data.face_found[i]) return NO_FACE_TOP;
  let best = -1;
  let bestValue = -Infinity;
  view.data.regions.forEach((region, r) => {
    const v = view.valueAt(name, r, i);
    if (region !== "background" && v != null && v > bestValue) {
      bestValue = v;
      best = r;
    }
  });
  return best >= 0 ? view.data.regions[best] : "–";
}

// --- drawing a frame: the video, the overlay, the outlines ----------------------------

/** The decoded window holding column i, or null while it is on its way. */
function inWindow(shared, i) {
  const win = shared.win;
  return win && i >= win.start && i < win.stop ? win : null;
}

function paintFrame(view, canvas, name, i, withOutlines) {
  const context = canvas.getContext("2d");
  const [DH, DW] = view.data.display;
  const win = inWindow(view.shared, i);
  const bitmaps = win && win.bitmaps;
  context.setTransform(canvas.width / DW, 0, 0, canvas.height / DH, 0, 0);
  context.globalAlpha = 1;
  if (bitmaps) context.drawImage(bitmaps[i - win.start], 0, 0, DW, DH);
  else {
    context.fillStyle = "#3a3a3a";
    context.fillRect(0, 0, DW, DH);
  }
  paintOverlay(view, context, name, i);
  if (withOutlines) paintOutlines(view, context, i);
  if (!view.data.face_found[i]) {
    context.strokeStyle = "#d62728";
    context.lineWidth = 6;
    context.strokeRect(3, 3, DW - 6, DH - 6);
  }
  context.setTransform(1, 0, 0, 1, 0, 0);
}

function paintOverlay(view, context, name, i) {
  const { shared, data } = view;
  const win = inWindow(shared, i);
  const codes = win && win.overlays[name];
  if (!codes) return;
  const { canvas, image, pixels } = shared.scratch;
  const palette = overlayPalette(shared, view.lut(name), !!data.signed[name], view.diverging(name));
  const offset = (i - win.start) * pixels.length;
  for (let p = 0; p < pixels.length; p++) pixels[p] = palette[codes[offset + p]];
  shared.scratch.context.putImageData(image, 0, 0);
  context.globalAlpha = view.model.get("opacity");
  context.imageSmoothingEnabled = true;
  context.drawImage(canvas, 0, 0, data.display[1], data.display[0]);
  context.globalAlpha = 1;
}

function paintOutlines(view, context, i) {
  const { shared, data, model } = view;
  const win = inWindow(shared, i);
  if (!win || !win.labels || !data.face_found[i]) return;
  const paths = outlinesOf(shared, i);
  const chosen = data.regions.indexOf(model.get("region"));
  context.lineWidth = 1;
  paths.forEach((path, r) => {
    if (!path || r === chosen || !model.get("outlines")) return;
    context.strokeStyle = data.colours[data.regions[r]];
    context.stroke(path);
  });
  if (chosen >= 0 && paths[chosen]) {
    context.lineWidth = 2.5;
    context.strokeStyle = "#ffffff";
    context.stroke(paths[chosen]);
  }
}

// --- the header: title and display controls --------------------------------------------

function createControls(view) {
  const { model, data } = view;
  const inputs = {
    method: select("xe-method", data.explainers.map((m) => [m, m]), model.get("method")),
    value: select("xe-value", data.values, model.get("value")),
    colour: select("xe-colour", COLOUR_MODES, model.get("colour")),
    opacity: h("input", { class: "xe-opacity", type: "range", min: "0", max: "1", step: "0.05" }),
    outlines: h("input", { class: "xe-outlines", type: "checkbox" }),
  };
  const node = h("div", { class: "xe-header" }, h("span", { class: "xe-title", text: data.title }),
    h("label", {}, "method ", inputs.method), h("label", {}, "value ", inputs.value),
    h("label", {}, "colours ", inputs.colour), h("label", {}, "opacity ", inputs.opacity),
    h("label", {}, inputs.outlines, " outlines"));
  const show = (key) => {
    if (key === "outlines") inputs.outlines.checked = model.get(key);
    else inputs[key].value = model.get(key);
  };
  const read = (key) => {
    if (key === "outlines") return inputs.outlines.checked;
    return key === "opacity" ? Number(inputs.opacity.value) : inputs[key].value;
  };
  const off = Object.keys(inputs).map((key) =>
    listen(inputs[key], key === "opacity" ? "input" : "change", () => view.set(key, read(key))));
  Object.keys(inputs).forEach(show);
  return { node, update: (key) => key in inputs && show(key), dispose: () => off.forEach((f) => f()) };
}

function createMessages(data) {
  const node = h("div", { class: "xe-messages" }, ...data.messages.map((text) => h("div", { class: "xe-message", text })),
    ...data.cautions.map((text) => h("div", { class: "xe-message xe-caution", text })));
  const error = (text) => node.append(h("div", { class: "xe-message xe-error", text }));
  return { node, update() {}, dispose() {}, error };
}

// --- the player: frame, transport, labels, colour bar ----------------------------------

function createPlayer(view) {
  return compose(h("div", { class: "xe-player" }),
    [createStage(view), createTransport(view), createFrameInfo(view), createColourbar(view)]);
}

function createStage(view) {
  const [DH, DW] = view.data.display;
  const canvas = h("canvas", { class: "xe-canvas", width: String(DW), height: String(DH) });
  const badge = h("div", { class: "xe-badge", text: "no face" });
  function update(key) {
    if (!PICTURE.has(key)) return;
    const i = view.index();
    paintFrame(view, canvas, view.model.get("method"), i, true);
    badge.style.display = view.data.face_found[i] ? "none" : "block";
  }
  return { node: h("div", { class: "xe-stage" }, canvas, badge), update, dispose() {} };
}

function createTransport(view) {
  const { model, T } = view;
  const buttons = [
    ["xe-first", "«", "first frame", () => view.seek(0)],
    ["xe-prev", "‹", "previous frame (←)", () => view.seek(view.index() - 1)],
    ["xe-play", "▶", "play / pause (space)", view.togglePlaying],
    ["xe-next", "›", "next frame (→)", () => view.seek(view.index() + 1)],
    ["xe-last", "»", "last frame", () => view.seek(T - 1)],
  ].map(([cls, text, title, action]) => [h("button", { class: `xe-button ${cls}`, text, title, type: "button" }), action]);
  const play = buttons[2][0];
  const speed = select("xe-speed", SPEEDS, String(model.get("speed")));
  const slider = h("input", { class: "xe-slider", type: "range", min: "0", max: String(T - 1), step: "1" });
  const playback = createPlayback(view);
  const off = [...buttons.map(([button, action]) => listen(button, "click", action)),
    listen(speed, "change", () => view.set("speed", Number(speed.value))),
    listen(slider, "input", () => view.seek(Number(slider.value)))];
  function update(key) {
    if (key === "all" || key === "frame") slider.value = String(view.index());
    if (key === "speed") speed.value = String(model.get("speed"));
    if (key === "all" || key === "playing") {
      play.textContent = model.get("playing") ? "❚❚" : "▶";
      playback.follow(key === "all");
    }
  }
  const node = part(h("div", { class: "xe-controls" }, ...buttons.map(([button]) => button), speed), slider).node;
  return { node, update, dispose: () => [...off, playback.stop].forEach((f) => f()) };
}

/** Steps through the frames at the video's rate times `speed` while `playing`. */
function createPlayback(view) {
  const { model, T } = view;
  let raf = null;
  let lastTick = 0;
  let lastSync = 0;
  function tick(now) {
    raf = null;
    if (!model.get("playing")) return;
    const interval = 1000 / (view.data.fps * model.get("speed"));
    if (now - lastTick >= interval) {
      const steps = Math.max(1, Math.floor((now - lastTick) / interval));
      lastTick = now;
      const i = view.index() + steps;
      if (i >= T - 1) {
        view.seek(T - 1);
        view.set("playing", false);
        return;
      }
      const sync = now - lastSync > SYNC_INTERVAL_MS;
      if (sync) lastSync = now;
      view.seek(i, sync);
    }
    raf = requestAnimationFrame(tick);
  }
  function follow(first) {
    const playing = model.get("playing");
    if (playing && raf === null) {
      if (view.index() >= T - 1) view.seek(0, false);
      lastTick = performance.now();
      raf = requestAnimationFrame(tick);
    }
    if (!playing && !first) model.save_changes(); // the frame reached, which playing synced sparsely
  }
  return { follow, stop: () => raf !== null && cancelAnimationFrame(raf) };
}

function createFrameInfo(view) {
  const { data, model } = view;
  const strip = h("canvas", { class: "xe-strip", width: String(data.display[1]), height: "6" });
  drawNoFaceStrip(strip, data.face_found);
  const frameLabel = h("div", { class: "xe-frame-label" });
  const regionLabel = h("div", { class: "xe-region-label" });
  function update(key) {
    if (!PICTURE.has(key)) return;
    const i = view.index();
    const [name, region] = [model.get("method"), model.get("region")];
    const seconds = data.seconds[i];
    frameLabel.textContent = `frame ${data.times[i]} · ${seconds == null ? "" : seconds.toFixed(2) + " s"} · ${i + 1}/${view.T}`;
    frameLabel.dataset.frame = String(data.times[i]);
    const value = region ? fmt(view.valueAt(name, data.regions.indexOf(region), i)) : null;
    regionLabel.textContent = region
      ? `${region}: ${value} (${model.get("value")}) · top: ${topRegion(view, name, i)}`
      : `top region: ${topRegion(view, name, i)} · click the heatmap to pick a region`;
  }
  return { node: part(strip, frameLabel, regionLabel).node, update, dispose() {} };
}

function drawNoFaceStrip(strip, faceFound) {
  const c = strip.getContext("2d");
  const T = faceFound.length;
  c.clearRect(0, 0, strip.width, strip.height);
  c.fillStyle = "#d62728";
  faceFound.forEach((found, i) => {
    if (found) return;
    const x0 = Math.floor((i / T) * strip.width);
    const x1 = Math.ceil(((i + 1) / T) * strip.width);
    c.fillRect(x0, 0, Math.max(1, x1 - x0), strip.height);
  });
}

function createColourbar(view) {
  const canvas = h("canvas", { class: "xe-colourbar", width: "256", height: "10" });
  const label = h("div", { class: "xe-colourbar-label" });
  function update(key) {
    if (key !== "all" && key !== "method" && key !== "colour") return;
    const name = view.model.get("method");
    const c = canvas.getContext("2d");
    const lut = view.lut(name);
    for (let x = 0; x < canvas.width; x++) {
      c.fillStyle = rgb(lut[Math.round((x / (canvas.width - 1)) * 255)]);
      c.fillRect(x, 0, 1, canvas.height);
    }
    label.textContent = colourbarText(view, name);
  }
  return { node: part(canvas, label).node, update, dispose() {} };
}

function colourbarText(view, name) {
  if (!view.data.overlay) return "";
  const scale = fmt(view.data.overlay.scale[name]);
  return view.diverging(name) ? `pixel attribution  −${scale} … 0 … +${scale}` : `pixel |attribution|  0 … ${scale}`;
}

// --- the plots: region × time heatmap and per-region series (plotly) ------------------

/** The plot area of a figure laid out by `plotLayout` (fixed margins), with the axis
 * ranges plotly chose; plotly writes them back into the layout it was given. */
function plotArea(div) {
  const { width, height, margin, xaxis, yaxis } = div.layout || {};
  if (!xaxis || !xaxis.range || !yaxis || !yaxis.range) return null;
  const area = { left: margin.l, top: margin.t, width: width - margin.l - margin.r, height: height - margin.t - margin.b };
  const [x0, x1] = xaxis.range;
  const [y0, y1] = yaxis.range;
  area.x = (v) => ((v - x0) / (x1 - x0)) * area.width; // pixels from the area's left edge
  area.y = (v) => ((y1 - v) / (y1 - y0)) * area.height; // pixels from its top edge
  return area;
}

function plotLayout(view, { height, margin, title }) {
  return {
    width: PLOT_WIDTH, height, margin: { ...margin, autoexpand: false },
    title: { text: title, font: { size: 13 }, x: 0.02 },
    xaxis: { title: { text: "frame", font: { size: 11 } }, zeroline: false },
    shapes: noFaceShapes(view.data), paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    font: { family: "sans-serif", color: view.textColour() },
  };
}

function noFaceShapes(data) {
  const shapes = [];
  let start = null;
  for (let i = 0; i <= data.times.length; i++) {
    const missing = i < data.times.length && !data.face_found[i];
    if (missing && start === null) start = i;
    if (!missing && start !== null) {
      shapes.push({ type: "rect", xref: "x", yref: "paper", x0: data.times[start] - 0.5, x1: data.times[i - 1] + 0.5,
        y0: 0, y1: 1, fillcolor: "rgba(120,120,120,0.45)", line: { width: 0 } });
      start = null;
    }
  }
  return shapes;
}

/** A click on a cell or a line point: show that frame and region. */
function pick(view, event) {
  const point = event.points && event.points[0];
  if (!point) return;
  const i = view.shared.position.get(Number(point.x));
  if (i === undefined) return;
  view.model.set("region", typeof point.y === "string" ? point.y : point.data.meta.region);
  view.seek(i);
}

/** A plotly figure from `figure()` with a cursor on the shown frame; `place(area)` puts
 * the component's other marks, `restyle(Plotly, div)` follows a region change. */
function createPlot(view, cls, { figure, marks = [], place = () => {}, restyle = () => {} }) {
  const div = h("div", { class: cls });
  const cursor = h("div", { class: "xe-cursor" });
  let bound = false;
  function follow() {
    const area = plotArea(div);
    if (!area) return;
    const x = area.left + area.x(view.data.times[view.index()]);
    cursor.style.display = x >= area.left - 1 && x <= area.left + area.width + 1 ? "block" : "none";
    Object.assign(cursor.style, { left: `${x}px`, top: `${area.top}px`, height: `${area.height}px` });
    place(area);
  }
  async function draw() {
    const Plotly = view.shared.plotly;
    if (!Plotly) return;
    const { data, layout } = figure();
    await Plotly.react(div, data, layout, PLOT_CONFIG);
    if (!bound) {
      bound = true;
      div.on("plotly_click", (event) => pick(view, event));
      div.on("plotly_relayout", follow);
    }
    follow();
  }
  function update(key) {
    if (FIGURE.has(key)) return draw();
    if (key === "region" && bound) restyle(view.shared.plotly, div);
    if (key === "frame" || key === "region") follow();
  }
  return { node: h("div", { class: "xe-plotbox" }, div, cursor, ...marks), update,
    dispose: () => bound && view.shared.plotly.purge(div) };
}

function createHeatmap(view) {
  const rowBox = h("div", { class: "xe-rowbox" });
  function place(area) {
    const r = view.data.regions.indexOf(view.model.get("region"));
    rowBox.style.display = r < 0 ? "none" : "block";
    if (r < 0) return;
    const [y0, y1] = [area.y(r - 0.5), area.y(r + 0.5)];
    Object.assign(rowBox.style, { left: `${area.left}px`, width: `${area.width}px`,
      top: `${area.top + Math.min(y0, y1)}px`, height: `${Math.abs(y1 - y0)}px` });
  }
  return createPlot(view, "xe-heatmap", { figure: () => heatmapFigure(view), marks: [rowBox], place });
}

function heatmapFigure(view) {
  const { data, model } = view;
  const name = model.get("method");
  const diverging = view.diverging(name);
  // magnitude colours for a signed method show |value|: a strongly negative region
  // must not look like "nothing"
  const magnitudes = !diverging && !!data.signed[name];
  const z = magnitudes ? view.rows(name).map((row) => row.map((v) => (v == null ? null : Math.abs(v)))) : view.rows(name);
  // the colour range leaves out the background row (its big sums would wash out the
  // face); background cells beyond the range saturate, their values are in the hover.
  const m = finiteMax(z, data.regions.indexOf("background"));
  const trace = {
    type: "heatmap", z, x: view.columns, y: data.regions,
    colorscale: colourscale(view.lut(name)), zmin: diverging ? -m : 0, zmax: m, xgap: 0, ygap: 1,
    hovertemplate: `frame %{x}<br>%{y}: %{z:.4g}${magnitudes ? " (|value|)" : ""}<extra></extra>`,
    colorbar: { thickness: 10, len: 0.95, outlinewidth: 0 },
  };
  // the right margin holds the colour bar and its tick labels
  const layout = plotLayout(view, { height: 40 + 22 * data.regions.length + 45,
    margin: { l: 90, r: 90, t: 30, b: 45 }, title: `${plotText(name)}: ${model.get("value")} by region and frame` });
  layout.yaxis = { autorange: "reversed", fixedrange: true, tickfont: { size: 11 },
    tickmode: "array", tickvals: data.regions, ticktext: data.regions.map(plotText) };
  return { data: [trace], layout };
}

function createSeries(view) {
  const restyle = (Plotly, div) => {
    const styles = view.data.regions.map((region) => lineStyle(view, region));
    Plotly.restyle(div, { "line.width": styles.map((s) => s.width), opacity: styles.map((s) => s.opacity) });
  };
  return createPlot(view, "xe-series", { figure: () => seriesFigure(view), restyle });
}

function lineStyle(view, region) {
  const chosen = view.model.get("region");
  return { width: region === chosen ? 3 : 1.2, opacity: chosen && region !== chosen ? 0.45 : 1 };
}

function seriesFigure(view) {
  const { data, model } = view;
  const rows = view.rows(model.get("method"));
  const traces = data.regions.map((region, r) => ({
    type: "scatter", mode: "lines", x: view.columns, y: rows[r], name: plotText(region), meta: { region },
    line: { color: data.colours[region] === "#000000" ? "#777777" : data.colours[region], width: lineStyle(view, region).width },
    opacity: lineStyle(view, region).opacity,
    visible: region === "background" ? "legendonly" : true,
    hovertemplate: "%{fullData.name}<br>frame %{x}: %{y:.4g}<extra></extra>",
  }));
  // the right margin holds the legend
  const layout = plotLayout(view, { height: 320, margin: { l: 60, r: 120, t: 28, b: 40 },
    title: `per-region ${model.get("value")} over time` });
  Object.assign(layout, { yaxis: { zeroline: true, zerolinecolor: "#bbb" }, legend: { font: { size: 10 } } });
  return { data: traces, layout };
}

// --- comparing the methods: thumbnails and rank agreement --------------------------------

function createCompare(view) {
  const title = h("div", { class: "xe-section-title", text: "Every method at this frame (click one to show it above)" });
  return compose(h("div", { class: "xe-compare" }), [part(title), createThumbnails(view), createAgreement(view)]);
}

function createThumbnails(view) {
  const [DH, DW] = view.data.display;
  const items = view.data.explainers.map((name) => {
    const canvas = h("canvas", { class: "xe-compare-canvas", width: String(Math.round(DW * 0.6)), height: String(Math.round(DH * 0.6)) });
    const caption = h("figcaption", {});
    return { name, canvas, caption, node: h("figure", { class: "xe-compare-item", "data-explainer": name }, canvas, caption) };
  });
  const off = items.map((item) => listen(item.node, "click", () => view.set("method", item.name)));
  function update(key) {
    if (!PICTURE.has(key)) return;
    const i = view.index();
    for (const item of items) {
      paintFrame(view, item.canvas, item.name, i, false);
      item.caption.textContent = `${item.name} · top: ${topRegion(view, item.name, i)}`;
      item.node.classList.toggle("xe-selected", item.name === view.model.get("method"));
    }
  }
  const node = h("div", { class: "xe-compare-row" }, ...items.map((item) => item.node));
  return { node, update, dispose: () => off.forEach((f) => f()) };
}

function createAgreement(view) {
  const { data } = view;
  if (!data.agreement) return part(h("div", { class: "xe-note", text: "One method in this cube: nothing to compare." }));
  const canvas = h("canvas", { class: "xe-agreement-canvas", width: "560", height: "70" });
  const label = h("div", { class: "xe-agreement-label" });
  const section = (text, ...nodes) => h("div", {}, h("div", { class: "xe-section-title", text }), ...nodes);
  const node = h("div", { class: "xe-agreement" },
    section("Rank agreement over region × time (Spearman)", agreementTable(data)),
    section("Per frame: mean pairwise Spearman over regions", canvas, label));
  const off = listen(canvas, "click", (event) => {
    const box = canvas.getBoundingClientRect();
    view.seek(Math.floor(((event.clientX - box.left) / box.width) * view.T));
  });
  function update(key) {
    if (key !== "all" && key !== "frame") return;
    const i = view.index();
    const column = data.window ? Math.floor(i / data.window.step) : i;
    drawAgreement(canvas, data.agreement.per_frame, column);
    label.textContent = `frame ${data.times[i]}: ρ = ${fmt(data.agreement.per_frame[column])}`;
  }
  return { node, update, dispose: off };
}

function agreementTable(data) {
  const table = h("table", { class: "xe-agreement-table" });
  table.append(h("tr", {}, h("th", {}), ...data.explainers.map((name) => h("th", { text: name }))));
  data.agreement.matrix.forEach((row, a) => {
    const cells = row.map((v) => {
      const cell = h("td", { text: v == null ? "–" : v.toFixed(2) });
      if (v != null) cell.style.background = rgb(data.luts.diverging[Math.round((v + 1) * 127.5)]);
      if (v != null && Math.abs(v) > 0.6) cell.style.color = "#fff";
      return cell;
    });
    table.append(h("tr", {}, h("th", { text: data.explainers[a] }), ...cells));
  });
  return table;
}

/** The per-frame agreement curve on [-1, 1], with a cursor at column i. */
function drawAgreement(canvas, perFrame, i) {
  const c = canvas.getContext("2d");
  const { width: W, height: H } = canvas;
  const x = (k) => (k + 0.5) * (W / perFrame.length);
  const y = (v) => H - 4 - ((v + 1) / 2) * (H - 8);
  const line = (colour, width, points) => { // a null point breaks the line
    c.strokeStyle = colour;
    c.lineWidth = width;
    c.beginPath();
    points.forEach((p, k) => p && (points[k - 1] ? c.lineTo(...p) : c.moveTo(...p)));
    c.stroke();
  };
  c.clearRect(0, 0, W, H);
  line("#bbb", 1, [[0, y(0)], [W, y(0)]]);
  line("#1f77b4", 1.5, perFrame.map((v, k) => (v == null ? null : [x(k), y(v)])));
  c.fillStyle = "#888";
  c.font = "9px sans-serif";
  c.fillText("+1", 2, 10);
  c.fillText("0", 2, y(0) - 2);
  c.fillText("−1", 2, H - 2);
  line("#d62728", 1.5, [[x(i), 0], [x(i), H]]);
}

// --- the evaluation: the method × metric table and the perturbation curves -------------

function createEvaluation(view) {
  const evaluation = view.data.evaluation;
  if (!evaluation) return part();
  const title = h("div", { class: "xe-section-title", text: "Evaluation: can these explanations be trusted?" });
  const parts = [part(title), createScoreTable(view, evaluation.table)];
  if (evaluation.curves) parts.push(createCurves(view, evaluation.curves, evaluation.table.explainers));
  return compose(h("div", { class: "xe-evaluation" }), parts);
}

/** One row per method, one column per metric under its group; a click on a row shows
 * that method above. */
function createScoreTable(view, table) {
  const rows = table.explainers.map((name, e) => h("tr", { class: "xe-eval-row", "data-explainer": name },
    h("th", { text: name, title: `click to show ${name} above` }),
    ...table.metrics.map((_, m) => scoreCell(table, e, m))));
  const node = h("div", { class: "xe-eval-scores" },
    h("table", { class: "xe-eval-table" }, scoreHeader(table), h("tbody", {}, ...rows)),
    h("div", { class: "xe-note", text: scoreNote(table) }));
  const off = rows.map((row, e) => listen(row, "click", () => view.set("method", table.explainers[e])));
  function update(key) {
    if (key !== "all" && key !== "method") return;
    rows.forEach((row, e) => row.classList.toggle("xe-selected", table.explainers[e] === view.model.get("method")));
  }
  return { node, update, dispose: () => off.forEach((f) => f()) };
}

function scoreHeader(table) {
  const groups = [];
  for (const metric of table.metrics) {
    const last = groups[groups.length - 1];
    if (last && last.name === metric.group) last.columns.push(metric);
    else groups.push({ name: metric.group, columns: [metric] });
  }
  const top = h("tr", {}, h("th", { rowspan: "2", text: "method" }));
  const bottom = h("tr", {});
  for (const { name, columns } of groups) {
    if (columns.length === 1 && columns[0].label === name) {
      top.append(metricHeader(columns[0], { rowspan: "2" }));
      continue;
    }
    top.append(h("th", { class: "xe-eval-group", colspan: String(columns.length), text: name }));
    for (const metric of columns) bottom.append(metricHeader(metric));
  }
  return h("thead", {}, top, bottom);
}

/** A metric's header: its definition as the tooltip, plain text (never markup). */
function metricHeader(metric, attrs = {}) {
  return h("th", { ...attrs, class: "xe-eval-metric", "data-metric": metric.name, title: metric.title },
    metric.label, metric.arrow ? h("span", { class: "xe-arrow", text: ` ${metric.arrow}` }) : null);
}

function scoreCell(table, e, m) {
  const [value, passed] = [table.score[e][m], table.passed[e][m]];
  const mark = passed == null ? null : h("span", { class: passed ? "xe-pass" : "xe-fail",
    text: passed ? " ✓" : " ✗", title: passed ? "passes its threshold" : "fails its threshold" });
  const cell = h("td", { "data-metric": table.metrics[m].name, "data-explainer": table.explainers[e] },
    h("span", { class: "xe-score-value", text: value == null ? "–" : value.toFixed(table.digits) }), mark);
  if (table.best[m].includes(e)) cell.classList.add("xe-best");
  return cell;
}

function scoreNote(table) {
  const directions = new Map(table.metrics.filter((m) => m.arrow)
    .map((m) => [m.arrow, `${m.arrow} ${m.better} is better`]));
  const verdicts = table.passed.some((row) => row.some((p) => p != null));
  const marks = verdicts ? ["✓ / ✗ pass / fail at the metric's threshold"] : [];
  return [...directions.values(), "bold: the best method per metric", ...marks,
    "hover a header for its definition", "click a row to show that method above"].join(" · ");
}

/** Per method, its MoRF, LeRF and random curves (with the random band) for the chosen
 * kind of perturbation, on one shared y range so that methods compare. */
function createCurves(view, curves, explainers) {
  let kind = curves.kinds[0][0];
  const menu = select("xe-eval-kind", curves.kinds.map(([k]) => [k, k]), kind);
  const legend = curves.orders.map(([, label, colour]) => {
    const swatch = h("span", { class: "xe-eval-swatch" });
    swatch.style.background = colour;
    return h("span", { class: "xe-eval-key" }, swatch, label);
  });
  const items = explainers.map((name) => {
    const caption = h("figcaption", { text: name, title: `click to show ${name} above` });
    const plot = h("div", { class: "xe-eval-plot" });
    const node = h("figure", { class: "xe-eval-panel", "data-explainer": name }, caption, plot);
    return { name, caption, plot, node };
  });
  const node = h("div", { class: "xe-eval-curves" },
    h("div", { class: "xe-eval-legend" }, h("label", {}, "perturbation ", menu), ...legend),
    h("div", { class: "xe-eval-panels" }, ...items.map((item) => item.node)));
  let drawn = false;
  async function draw() {
    const Plotly = view.shared.plotly;
    if (!Plotly) return;
    const layout = () => curveLayout(view, curves, kind, curveRange(curves, kind));
    await Promise.all(items.map((item) =>
      Plotly.react(item.plot, curveTraces(curves, item.name, kind), layout(), PLOT_CONFIG)));
    drawn = true;
    node.dataset.kind = kind;
  }
  const off = [listen(menu, "change", () => { kind = menu.value; draw(); }),
    ...items.map((item) => listen(item.caption, "click", () => view.set("method", item.name)))];
  function update(key) {
    if (key === "all" || key === "method") {
      for (const item of items) item.node.classList.toggle("xe-selected", item.name === view.model.get("method"));
    }
    if (key === "ready") return draw();
  }
  function dispose() {
    off.forEach((f) => f());
    if (drawn) items.forEach((item) => view.shared.plotly.purge(item.plot));
  }
  return { node, update, dispose };
}

function curveTraces(curves, name, kind) {
  const x = curves.steps;
  const traces = [];
  const band = curves.ci && curves.ci[name] && curves.ci[name][kind];
  if (band) {
    const random = curves.orders.find(([order]) => order === "random");
    // one closed outline: along the upper bound, back along the lower one
    traces.push({ type: "scatter", mode: "lines", x: [...x, ...[...x].reverse()],
      y: [...band.upper, ...[...band.lower].reverse()], fill: "toself", line: { width: 0 }, hoverinfo: "skip",
      fillcolor: translucent(random ? random[2] : "#7f7f7f"), meta: { role: "band" } });
  }
  for (const [order, label, colour] of curves.orders) {
    traces.push({ type: "scatter", mode: "lines+markers", x, y: curves.values[name][kind][order], name: label,
      line: { color: colour, width: 2 }, marker: { size: 4, color: colour }, meta: { role: "curve", order },
      hovertemplate: `${label}<br>%{x:.0%} of units: %{y:.4g}<extra></extra>` });
  }
  return traces;
}

function translucent(hex) {
  const [r, g, b] = [1, 3, 5].map((k) => parseInt(hex.slice(k, k + 2), 16));
  return `rgba(${r},${g},${b},0.22)`;
}

/** The [low, high] of every value drawn for `kind`, padded; undefined when none. */
function curveRange(curves, kind) {
  let [low, high] = [Infinity, -Infinity];
  const take = (values) => values.forEach((v) => {
    if (v != null && isFinite(v)) [low, high] = [Math.min(low, v), Math.max(high, v)];
  });
  for (const perKind of Object.values(curves.values)) Object.values(perKind[kind] || {}).forEach(take);
  for (const perKind of Object.values(curves.ci || {})) if (perKind[kind]) Object.values(perKind[kind]).forEach(take);
  if (!(high >= low)) return undefined;
  const pad = 0.05 * (high - low || Math.abs(high) || 1);
  return [low - pad, high + pad];
}

function curveLayout(view, curves, kind, range) {
  const axis = curves.kinds.find(([k]) => k === kind)[1];
  return {
    width: 300, height: 220, showlegend: false, margin: { l: 52, r: 10, t: 6, b: 40, autoexpand: false },
    xaxis: { title: { text: axis, font: { size: 11 } }, range: [-0.02, 1.02], tickformat: ".0%", zeroline: false },
    yaxis: { title: { text: curves.label, font: { size: 11 } }, range, autorange: !range, zeroline: false },
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    font: { family: "sans-serif", size: 10, color: view.textColour() },
  };
}

// --- the widget -------------------------------------------------------------------------

function keyboard(view) {
  return (event) => {
    const target = event.target;
    if (target.tagName === "SELECT" || (target.tagName === "INPUT" && target.type !== "range")) return;
    const action = { ArrowRight: () => view.seek(view.index() + 1), ArrowLeft: () => view.seek(view.index() - 1),
      " ": view.togglePlaying }[event.key];
    if (!action) return;
    action();
    event.preventDefault();
  };
}

/** One view of a model: the components, wired to the model's traits. */
function render({ model, el }, shared = createShared(model)) {
  const root = h("div", { class: "xe", tabindex: "0" });
  const view = createView(model, shared, root);
  const messages = createMessages(view.data);
  const plots = compose(h("div", { class: "xe-plots" }), [createHeatmap(view), createSeries(view)]);
  const main = compose(h("div", { class: "xe-main" }), [createPlayer(view), plots]);
  const widget = compose(root, [createControls(view), messages, main, createCompare(view), createEvaluation(view)]);
  const windows = shared.windows;
  const update = (key) => {
    const started = performance.now();
    if (windows && PICTURE.has(key)) windows.show(shared, view.index(), model.get("playing"));
    const done = widget.update(key);
    root.dataset.frame = String(view.data.times[view.index()]);
    if (windows) root.dataset.window = shared.win ? String(shared.win.index) : "";
    if (windows) root.dataset.partial = shared.win && shared.win.partial ? "1" : "0";
    root.dataset.lastDrawMs = (performance.now() - started).toFixed(2);
    return done;
  };
  const handlers = TRAITS.map((key) => [`change:${key}`, () => update(key)]);
  for (const [event, f] of handlers) model.on(event, f);
  const offKeys = listen(root, "keydown", keyboard(view));
  const onWindow = () => update("window");
  if (windows) windows.listeners.add(onWindow);
  el.append(root);
  update("all");
  let stopped = false;
  shared.ready
    .then(() => !stopped && update("ready").then(() => { root.dataset.ready = "1"; }))
    .catch((error) => {
      messages.error(`The explorer could not start: ${error}`);
      root.dataset.error = String(error);
      throw error;
    });
  return () => {
    stopped = true;
    offKeys();
    if (windows) windows.listeners.delete(onWindow);
    for (const [event, f] of handlers) model.off(event, f);
    widget.dispose();
  };
}

/** The anywidget front-end. anywidget calls this once per model, so `shared` (the
 * decode, the outline cache) is per model and shared by all of that model's views. */
export function createWidget() {
  let shared = null;
  return {
    initialize({ model }) {
      shared = createShared(model);
    },
    render: ({ model, el }) => render({ model, el }, shared || createShared(model)),
  };
}

export default createWidget;
