// expresso-xai Explorer: the front-end of expresso_xai.widgets.Explorer.
//
// A plain ES module for anywidget (no build step, nothing from a CDN). The kernel sends
// everything once in the `_data` trait (see expresso_xai/widgets/payload.py): frames as
// JPEG, pixel maps as deflated uint8 codes, region labels, region x time values. After
// that, moving between frames never waits for the kernel: frames are decoded once into
// ImageBitmaps and outlines are cached per frame. The same module runs in the standalone
// HTML from Explorer.save_html(), driven by `standaloneModel` instead of a kernel.

const SYNC_INTERVAL_MS = 250; // while playing, tell the kernel the frame at most this often
const decodedByModel = new WeakMap(); // one decode per model, shared by its views

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

async function inflate(base64) {
  const stream = new Blob([bytesOf(base64)]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function decodeAll(data) {
  const out = { overlays: {}, labels: null, bitmaps: null };
  if (data.overlay) {
    for (const name of data.explainers) out.overlays[name] = await inflate(data.overlay.data[name]);
  }
  if (data.labels) {
    const raw = await inflate(data.labels.data);
    out.labels = data.labels.bytes === 2 ? new Uint16Array(raw.buffer, raw.byteOffset, raw.length / 2) : raw;
  }
  if (data.frames) {
    out.bitmaps = await Promise.all(
      data.frames.jpeg.map((b64) => createImageBitmap(new Blob([bytesOf(b64)], { type: "image/jpeg" }))),
    );
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

// --- the widget ---------------------------------------------------------------------

function render({ model, el }) {
  const data = model.get("_data");
  const T = data.times.length;
  const R = data.regions.length;
  const E = data.explainers.length;
  const position = new Map(data.times.map((t, i) => [t, i]));
  const overlayShape = data.overlay ? data.overlay.shape : null; // [T, h, w]
  const [DH, DW] = data.display; // the player canvas, sized by payload.py
  let decoded = { overlays: {}, labels: null, bitmaps: null };
  let Plotly = null;
  const disposers = [];
  const outlineCache = new Map();

  // ---- DOM ----
  const root = h("div", { class: "xe", tabindex: "0" });
  const methodSelect = select("xe-method", data.explainers.map((m) => [m, m]), model.get("method"));
  const valueSelect = select("xe-value", [["attribution", "attribution (sum)"], ["density", "per pixel"], ["share", "share of total"]], model.get("value"));
  const colourSelect = select("xe-colour", [["auto", "auto"], ["signed", "signed"], ["magnitude", "magnitude"]], model.get("colour"));
  const opacity = h("input", { class: "xe-opacity", type: "range", min: "0", max: "1", step: "0.05" });
  opacity.value = model.get("opacity");
  const outlines = h("input", { class: "xe-outlines", type: "checkbox" });
  outlines.checked = model.get("outlines");
  const header = h("div", { class: "xe-header" },
    h("span", { class: "xe-title", text: data.title }),
    h("label", {}, "method ", methodSelect),
    h("label", {}, "value ", valueSelect),
    h("label", {}, "colours ", colourSelect),
    h("label", {}, "opacity ", opacity),
    h("label", {}, outlines, " outlines"),
  );
  const messages = h("div", { class: "xe-messages" });
  for (const text of data.messages) messages.append(h("div", { class: "xe-message", text }));

  const canvas = h("canvas", { class: "xe-canvas", width: String(DW), height: String(DH) });
  const ctx = canvas.getContext("2d");
  const badge = h("div", { class: "xe-badge", text: "no face" });
  const stage = h("div", { class: "xe-stage" }, canvas, badge);
  const button = (cls, text, title) => h("button", { class: `xe-button ${cls}`, text, title, type: "button" });
  const firstButton = button("xe-first", "«", "first frame");
  const prevButton = button("xe-prev", "‹", "previous frame (←)");
  const playButton = button("xe-play", "▶", "play / pause (space)");
  const nextButton = button("xe-next", "›", "next frame (→)");
  const lastButton = button("xe-last", "»", "last frame");
  const speedSelect = select("xe-speed", [["0.25", "¼×"], ["0.5", "½×"], ["1", "1×"], ["2", "2×"], ["4", "4×"]], String(model.get("speed")));
  const slider = h("input", { class: "xe-slider", type: "range", min: "0", max: String(T - 1), step: "1" });
  const strip = h("canvas", { class: "xe-strip", width: String(DW), height: "6" });
  const frameLabel = h("div", { class: "xe-frame-label" });
  const regionLabel = h("div", { class: "xe-region-label" });
  const colourbar = h("canvas", { class: "xe-colourbar", width: "256", height: "10" });
  const colourbarLabel = h("div", { class: "xe-colourbar-label" });
  const player = h("div", { class: "xe-player" }, stage,
    h("div", { class: "xe-controls" }, firstButton, prevButton, playButton, nextButton, lastButton, speedSelect),
    slider, strip, frameLabel, regionLabel, colourbar, colourbarLabel);
  const heatmapDiv = h("div", { class: "xe-heatmap" });
  const heatCursor = h("div", { class: "xe-cursor" });
  const rowBox = h("div", { class: "xe-rowbox" });
  const heatBox = h("div", { class: "xe-plotbox" }, heatmapDiv, heatCursor, rowBox);
  const seriesDiv = h("div", { class: "xe-series" });
  const seriesCursor = h("div", { class: "xe-cursor" });
  const seriesBox = h("div", { class: "xe-plotbox" }, seriesDiv, seriesCursor);
  const plots = h("div", { class: "xe-plots" }, heatBox, seriesBox);

  const compareRow = h("div", { class: "xe-compare-row" });
  const compareCanvases = data.explainers.map((name) => {
    const c = h("canvas", { class: "xe-compare-canvas", width: String(Math.round(DW * 0.6)), height: String(Math.round(DH * 0.6)) });
    const caption = h("figcaption", {});
    const figure = h("figure", { class: "xe-compare-item", "data-explainer": name }, c, caption);
    figure.addEventListener("click", () => setTrait("method", name));
    compareRow.append(figure);
    return { canvas: c, ctx: c.getContext("2d"), caption, figure, name };
  });
  const agreementTable = h("table", { class: "xe-agreement-table" });
  const agreementCanvas = h("canvas", { class: "xe-agreement-canvas", width: "560", height: "70" });
  const agreementLabel = h("div", { class: "xe-agreement-label" });
  const compare = h("div", { class: "xe-compare" },
    h("div", { class: "xe-section-title", text: "Every method at this frame (click one to show it above)" }),
    compareRow,
    data.agreement
      ? h("div", { class: "xe-agreement" },
          h("div", {}, h("div", { class: "xe-section-title", text: "Rank agreement over region × time (Spearman)" }), agreementTable),
          h("div", {}, h("div", { class: "xe-section-title", text: "Per frame: mean pairwise Spearman over regions" }), agreementCanvas, agreementLabel))
      : h("div", { class: "xe-note", text: "One method in this cube: nothing to compare." }),
  );
  root.append(header, messages, h("div", { class: "xe-main" }, player, plots), compare);
  el.append(root);

  // ---- state helpers ----
  const index = () => position.get(model.get("frame")) ?? 0;
  function setTrait(key, value, sync = true) {
    model.set(key, value);
    if (sync) model.save_changes();
  }
  function seekIndex(i, sync = true) {
    const clamped = Math.max(0, Math.min(T - 1, i));
    setTrait("frame", data.times[clamped], sync);
  }
  function signedData(name) {
    return !!data.signed[name];
  }
  function diverging(name) {
    const mode = model.get("colour");
    return mode === "signed" || (mode === "auto" && signedData(name));
  }

  // ---- drawing ----
  const scratch = document.createElement("canvas");
  const scratchCtx = scratch.getContext("2d");
  if (overlayShape) {
    scratch.width = overlayShape[2];
    scratch.height = overlayShape[1];
  }
  const overlayImage = overlayShape ? scratchCtx.createImageData(overlayShape[2], overlayShape[1]) : null;

  function paintOverlay(name, i) {
    const codes = decoded.overlays[name];
    if (!codes) return false;
    const [, oh, ow] = overlayShape;
    const offset = i * oh * ow;
    const lut = diverging(name) ? data.luts.diverging : data.luts.sequential;
    const div = diverging(name);
    const signed = signedData(name);
    const px = overlayImage.data;
    for (let p = 0; p < oh * ow; p++) {
      const q = codes[offset + p];
      const v = signed ? Math.max(-1, Math.min(1, (q - 128) / 127)) : q / 255; // payload.decode
      const magnitude = Math.abs(v);
      const c = lut[div ? Math.round((Math.max(-1, Math.min(1, v)) + 1) * 127.5) : Math.round(magnitude * 255)];
      px[4 * p] = c[0];
      px[4 * p + 1] = c[1];
      px[4 * p + 2] = c[2];
      // transparent at 0, opaque from 44% of the scale up; the square root keeps weak
      // but real attribution visible.
      px[4 * p + 3] = Math.min(255, Math.round(383 * Math.sqrt(magnitude)));
    }
    scratchCtx.putImageData(overlayImage, 0, 0);
    return true;
  }

  function member(labels, offset, r, p) {
    const value = labels[offset + p];
    return data.labels.encoding === "bits" ? ((value >> r) & 1) === 1 : value === r;
  }

  function outlinesOf(i) {
    if (outlineCache.has(i)) return outlineCache.get(i);
    const labels = decoded.labels;
    const [, oh, ow] = overlayShape;
    const offset = i * oh * ow;
    const kx = DW / ow;
    const ky = DH / oh;
    const paths = [];
    for (let r = 0; r < R; r++) {
      if (data.regions[r] === "background") {
        paths.push(null);
        continue;
      }
      const path = new Path2D();
      let any = false;
      for (let y = 0; y < oh; y++) {
        for (let x = 0; x < ow; x++) {
          const inside = member(labels, offset, r, y * ow + x);
          if (!inside) continue;
          any = true;
          if (x === ow - 1 || !member(labels, offset, r, y * ow + x + 1)) { path.moveTo((x + 1) * kx, y * ky); path.lineTo((x + 1) * kx, (y + 1) * ky); }
          if (x === 0 || !member(labels, offset, r, y * ow + x - 1)) { path.moveTo(x * kx, y * ky); path.lineTo(x * kx, (y + 1) * ky); }
          if (y === oh - 1 || !member(labels, offset, r, (y + 1) * ow + x)) { path.moveTo(x * kx, (y + 1) * ky); path.lineTo((x + 1) * kx, (y + 1) * ky); }
          if (y === 0 || !member(labels, offset, r, (y - 1) * ow + x)) { path.moveTo(x * kx, y * ky); path.lineTo((x + 1) * kx, y * ky); }
        }
      }
      paths.push(any ? { path } : null);
    }
    outlineCache.set(i, paths);
    return paths;
  }

  function drawFrame(context, width, height, name, i, withOutlines) {
    context.setTransform(width / DW, 0, 0, height / DH, 0, 0);
    context.globalAlpha = 1;
    if (decoded.bitmaps) context.drawImage(decoded.bitmaps[i], 0, 0, DW, DH);
    else {
      context.fillStyle = "#3a3a3a";
      context.fillRect(0, 0, DW, DH);
    }
    if (overlayShape && paintOverlay(name, i)) {
      context.globalAlpha = model.get("opacity");
      context.imageSmoothingEnabled = true;
      context.drawImage(scratch, 0, 0, DW, DH);
      context.globalAlpha = 1;
    }
    if (withOutlines && decoded.labels && data.face_found[i]) {
      const paths = outlinesOf(i);
      const chosen = data.regions.indexOf(model.get("region"));
      if (model.get("outlines")) {
        context.lineWidth = 1;
        for (let r = 0; r < R; r++) {
          if (!paths[r] || r === chosen) continue;
          context.strokeStyle = data.colours[data.regions[r]];
          context.stroke(paths[r].path);
        }
      }
      if (chosen >= 0 && paths[chosen]) {
        context.lineWidth = 2.5;
        context.strokeStyle = "#ffffff";
        context.stroke(paths[chosen].path);
      }
    }
    if (!data.face_found[i]) {
      context.strokeStyle = "#d62728";
      context.lineWidth = 6;
      context.strokeRect(3, 3, DW - 6, DH - 6);
    }
    context.setTransform(1, 0, 0, 1, 0, 0);
  }

  function textColour() {
    // follow JupyterLab's theme (dark themes too): the colour the widget's text has
    return getComputedStyle(root).color || "#222";
  }

  function heatRows(name) {
    return data.heat[name][model.get("value")];
  }

  function topRegion(name, i) {
    const rows = heatRows(name);
    let best = -1;
    let bestValue = -Infinity;
    for (let r = 0; r < R; r++) {
      if (data.regions[r] === "background") continue;
      const v = rows[r][i];
      if (v != null && v > bestValue) { bestValue = v; best = r; }
    }
    return best >= 0 ? data.regions[best] : "–";
  }

  function drawStrip() {
    const c = strip.getContext("2d");
    c.clearRect(0, 0, strip.width, strip.height);
    c.fillStyle = "#d62728";
    for (let i = 0; i < T; i++) {
      if (data.face_found[i]) continue;
      const x0 = Math.floor((i / T) * strip.width);
      const x1 = Math.ceil(((i + 1) / T) * strip.width);
      c.fillRect(x0, 0, Math.max(1, x1 - x0), strip.height);
    }
  }

  function drawColourbar() {
    const name = model.get("method");
    const c = colourbar.getContext("2d");
    const lut = diverging(name) ? data.luts.diverging : data.luts.sequential;
    for (let x = 0; x < colourbar.width; x++) {
      c.fillStyle = rgb(lut[Math.round((x / (colourbar.width - 1)) * 255)]);
      c.fillRect(x, 0, 1, colourbar.height);
    }
    if (data.overlay) {
      const s = data.overlay.scale[name];
      colourbarLabel.textContent = diverging(name)
        ? `pixel attribution  −${fmt(s)} … 0 … +${fmt(s)}`
        : `pixel |attribution|  0 … ${fmt(s)}`;
    } else colourbarLabel.textContent = "";
  }

  function drawAgreement(i) {
    if (!data.agreement) return;
    const c = agreementCanvas.getContext("2d");
    const W = agreementCanvas.width;
    const H = agreementCanvas.height;
    c.clearRect(0, 0, W, H);
    const y = (v) => H - 4 - ((v + 1) / 2) * (H - 8);
    c.strokeStyle = "#bbb";
    c.lineWidth = 1;
    c.beginPath(); c.moveTo(0, y(0)); c.lineTo(W, y(0)); c.stroke();
    c.strokeStyle = "#1f77b4";
    c.lineWidth = 1.5;
    c.beginPath();
    let started = false;
    data.agreement.per_frame.forEach((v, k) => {
      if (v == null) { started = false; return; }
      const x = (k + 0.5) * (W / T);
      if (!started) { c.moveTo(x, y(v)); started = true; } else c.lineTo(x, y(v));
    });
    c.stroke();
    c.fillStyle = "#888";
    c.font = "9px sans-serif";
    c.fillText("+1", 2, 10);
    c.fillText("0", 2, y(0) - 2);
    c.fillText("−1", 2, H - 2);
    c.strokeStyle = "#d62728";
    c.beginPath(); c.moveTo((i + 0.5) * (W / T), 0); c.lineTo((i + 0.5) * (W / T), H); c.stroke();
    agreementLabel.textContent = `frame ${data.times[i]}: ρ = ${fmt(data.agreement.per_frame[i])}`;
  }

  function buildAgreementTable() {
    if (!data.agreement) return;
    agreementTable.replaceChildren();
    const head = h("tr", {}, h("th", {}));
    for (const name of data.explainers) head.append(h("th", { text: name }));
    agreementTable.append(head);
    data.agreement.matrix.forEach((row, a) => {
      const tr = h("tr", {}, h("th", { text: data.explainers[a] }));
      row.forEach((v) => {
        const cell = h("td", { text: v == null ? "–" : v.toFixed(2) });
        if (v != null) cell.style.background = rgb(data.luts.diverging[Math.round((v + 1) * 127.5)]);
        if (v != null && Math.abs(v) > 0.6) cell.style.color = "#fff";
        tr.append(cell);
      });
      agreementTable.append(tr);
    });
  }

  // ---- plots ----
  function plotArea(gd) {
    const layout = gd && gd._fullLayout;
    return layout && layout._size ? layout : null;
  }

  function moveCursor(div, cursor, i) {
    const layout = plotArea(div);
    if (!layout) return;
    const x = layout._size.l + layout.xaxis.l2p(data.times[i]);
    const inside = x >= layout._size.l - 1 && x <= layout._size.l + layout._size.w + 1;
    cursor.style.display = inside ? "block" : "none";
    cursor.style.left = `${x}px`;
    cursor.style.top = `${layout._size.t}px`;
    cursor.style.height = `${layout._size.h}px`;
  }

  function moveRowBox() {
    const layout = plotArea(heatmapDiv);
    const r = data.regions.indexOf(model.get("region"));
    if (!layout || r < 0) { rowBox.style.display = "none"; return; }
    const y0 = layout.yaxis.l2p(r - 0.5);
    const y1 = layout.yaxis.l2p(r + 0.5);
    rowBox.style.display = "block";
    rowBox.style.left = `${layout._size.l}px`;
    rowBox.style.width = `${layout._size.w}px`;
    rowBox.style.top = `${layout._size.t + Math.min(y0, y1)}px`;
    rowBox.style.height = `${Math.abs(y1 - y0)}px`;
  }

  function noFaceShapes() {
    const shapes = [];
    let start = null;
    for (let i = 0; i <= T; i++) {
      const missing = i < T && !data.face_found[i];
      if (missing && start === null) start = i;
      if (!missing && start !== null) {
        shapes.push({ type: "rect", xref: "x", yref: "paper", x0: data.times[start] - 0.5, x1: data.times[i - 1] + 0.5,
          y0: 0, y1: 1, fillcolor: "rgba(120,120,120,0.45)", line: { width: 0 } });
        start = null;
      }
    }
    return shapes;
  }

  function heatmapFigure() {
    const name = model.get("method");
    const signed = signedData(name);
    const div = diverging(name);
    // magnitude colours for a signed method show |value|: a strongly negative region
    // must not look like "nothing"
    const z = !div && signed ? heatRows(name).map((row) => row.map((v) => (v == null ? null : Math.abs(v)))) : heatRows(name);
    // the colour range leaves out the background row (its big sums would wash out the
    // face); background cells beyond the range saturate, their values are in the hover.
    const m = finiteMax(z, data.regions.indexOf("background"));
    const trace = {
      type: "heatmap", z, x: data.times, y: data.regions,
      colorscale: colourscale(div ? data.luts.diverging : data.luts.sequential),
      zmin: div ? -m : 0, zmax: m, xgap: 0, ygap: 1,
      hovertemplate: `frame %{x}<br>%{y}: %{z:.4g}${!div && signed ? " (|value|)" : ""}<extra></extra>`,
      colorbar: { thickness: 10, len: 0.95, outlinewidth: 0 },
    };
    const layout = {
      width: 640, height: 40 + 22 * R + 45, margin: { l: 90, r: 20, t: 30, b: 45 },
      title: { text: `${name}: ${model.get("value")} by region and frame`, font: { size: 13 }, x: 0.02 },
      xaxis: { title: { text: "frame", font: { size: 11 } }, zeroline: false },
      yaxis: { autorange: "reversed", fixedrange: true, tickfont: { size: 11 } },
      shapes: noFaceShapes(), paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      font: { family: "sans-serif", color: textColour() },
    };
    return { data: [trace], layout };
  }

  function seriesFigure() {
    const name = model.get("method");
    const rows = heatRows(name);
    const chosen = model.get("region");
    const traces = data.regions.map((region, r) => ({
      type: "scatter", mode: "lines", x: data.times, y: rows[r], name: region,
      line: { color: data.colours[region] === "#000000" ? "#777777" : data.colours[region], width: region === chosen ? 3 : 1.2 },
      opacity: chosen && region !== chosen ? 0.45 : 1,
      visible: region === "background" ? "legendonly" : true,
      hovertemplate: `${region}<br>frame %{x}: %{y:.4g}<extra></extra>`,
    }));
    const layout = {
      width: 640, height: 320, margin: { l: 60, r: 20, t: 28, b: 40 },
      title: { text: `per-region ${model.get("value")} over time`, font: { size: 13 }, x: 0.02 },
      xaxis: { title: { text: "frame", font: { size: 11 } }, zeroline: false },
      yaxis: { zeroline: true, zerolinecolor: "#bbb" }, legend: { font: { size: 10 } },
      shapes: noFaceShapes(), paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      font: { family: "sans-serif", color: textColour() },
    };
    return { data: traces, layout };
  }

  async function drawPlots() {
    if (!Plotly) return;
    const config = { displaylogo: false, responsive: false, modeBarButtonsToRemove: ["lasso2d", "select2d"] };
    const heat = heatmapFigure();
    await Plotly.react(heatmapDiv, heat.data, heat.layout, config);
    const series = seriesFigure();
    await Plotly.react(seriesDiv, series.data, series.layout, config);
    moveCursor(heatmapDiv, heatCursor, index());
    moveCursor(seriesDiv, seriesCursor, index());
    moveRowBox();
  }

  function restyleSeries() {
    if (!Plotly || !seriesDiv.data) return;
    const chosen = model.get("region");
    Plotly.restyle(seriesDiv, {
      "line.width": data.regions.map((r) => (r === chosen ? 3 : 1.2)),
      opacity: data.regions.map((r) => (chosen && r !== chosen ? 0.45 : 1)),
    });
  }

  // ---- updates ----
  function showFrame() {
    const started = performance.now();
    const i = index();
    const name = model.get("method");
    drawFrame(ctx, canvas.width, canvas.height, name, i, true);
    for (const item of compareCanvases) {
      drawFrame(item.ctx, item.canvas.width, item.canvas.height, item.name, i, false);
      item.caption.textContent = `${item.name} · top: ${topRegion(item.name, i)}`;
      item.figure.classList.toggle("xe-selected", item.name === name);
    }
    slider.value = String(i);
    const seconds = data.seconds[i];
    frameLabel.textContent = `frame ${data.times[i]} · ${seconds == null ? "" : seconds.toFixed(2) + " s"} · ${i + 1}/${T}`;
    frameLabel.dataset.frame = String(data.times[i]);
    badge.style.display = data.face_found[i] ? "none" : "block";
    const region = model.get("region");
    const rows = heatRows(name);
    regionLabel.textContent = region
      ? `${region}: ${fmt(rows[data.regions.indexOf(region)][i])} (${model.get("value")}) · top: ${topRegion(name, i)}`
      : `top region: ${topRegion(name, i)} · click the heatmap to pick a region`;
    moveCursor(heatmapDiv, heatCursor, i);
    moveCursor(seriesDiv, seriesCursor, i);
    drawAgreement(i);
    root.dataset.frame = String(data.times[i]);
    root.dataset.lastDrawMs = (performance.now() - started).toFixed(2);
  }

  function showMethod() {
    methodSelect.value = model.get("method");
    drawColourbar();
    drawPlots();
    showFrame();
  }

  // ---- playback ----
  let raf = null;
  let lastTick = 0;
  let lastSync = 0;
  function tick(now) {
    if (!model.get("playing")) { raf = null; return; }
    const interval = 1000 / (data.fps * model.get("speed"));
    if (now - lastTick >= interval) {
      const steps = Math.max(1, Math.floor((now - lastTick) / interval));
      lastTick = now;
      const i = index() + steps;
      if (i >= T - 1) {
        seekIndex(T - 1);
        setTrait("playing", false);
        return;
      }
      const sync = now - lastSync > SYNC_INTERVAL_MS;
      if (sync) lastSync = now;
      seekIndex(i, sync);
    }
    raf = requestAnimationFrame(tick);
  }
  function onPlaying() {
    const playing = model.get("playing");
    playButton.textContent = playing ? "❚❚" : "▶";
    if (playing && raf === null) {
      if (index() >= T - 1) seekIndex(0, false);
      lastTick = performance.now();
      raf = requestAnimationFrame(tick);
    }
    if (!playing) model.save_changes();
  }

  // ---- events ----
  const listen = (node, event, f) => {
    node.addEventListener(event, f);
    disposers.push(() => node.removeEventListener(event, f));
  };
  listen(methodSelect, "change", () => setTrait("method", methodSelect.value));
  listen(valueSelect, "change", () => setTrait("value", valueSelect.value));
  listen(colourSelect, "change", () => setTrait("colour", colourSelect.value));
  listen(opacity, "input", () => setTrait("opacity", Number(opacity.value)));
  listen(outlines, "change", () => setTrait("outlines", outlines.checked));
  listen(speedSelect, "change", () => setTrait("speed", Number(speedSelect.value)));
  listen(slider, "input", () => seekIndex(Number(slider.value)));
  listen(firstButton, "click", () => seekIndex(0));
  listen(prevButton, "click", () => seekIndex(index() - 1));
  listen(nextButton, "click", () => seekIndex(index() + 1));
  listen(lastButton, "click", () => seekIndex(T - 1));
  listen(playButton, "click", () => setTrait("playing", !model.get("playing")));
  listen(agreementCanvas, "click", (event) => {
    const box = agreementCanvas.getBoundingClientRect();
    seekIndex(Math.floor(((event.clientX - box.left) / box.width) * T));
  });
  listen(root, "keydown", (event) => {
    if (event.target.tagName === "SELECT" || event.target.tagName === "INPUT" && event.target.type !== "range") return;
    if (event.key === "ArrowRight") { seekIndex(index() + 1); event.preventDefault(); }
    if (event.key === "ArrowLeft") { seekIndex(index() - 1); event.preventDefault(); }
    if (event.key === " ") { setTrait("playing", !model.get("playing")); event.preventDefault(); }
  });

  const handlers = {
    "change:frame": showFrame,
    "change:method": showMethod,
    "change:value": () => { valueSelect.value = model.get("value"); drawPlots(); showFrame(); },
    "change:colour": () => { colourSelect.value = model.get("colour"); drawColourbar(); drawPlots(); showFrame(); },
    "change:opacity": () => { opacity.value = model.get("opacity"); showFrame(); },
    "change:outlines": () => { outlines.checked = model.get("outlines"); showFrame(); },
    "change:region": () => { restyleSeries(); moveRowBox(); showFrame(); },
    "change:playing": onPlaying,
    "change:speed": () => { speedSelect.value = String(model.get("speed")); },
  };
  for (const [event, f] of Object.entries(handlers)) {
    model.on(event, f);
    disposers.push(() => model.off(event, f));
  }

  // ---- start ----
  drawStrip();
  drawColourbar();
  buildAgreementTable();
  showFrame();
  let stopped = false;
  if (!decodedByModel.has(model)) decodedByModel.set(model, decodeAll(data));
  Promise.all([decodedByModel.get(model), loadPlotly(model)])
    .then(async ([result, plotly]) => {
      if (stopped) return;
      decoded = result;
      Plotly = plotly;
      await drawPlots();
      const onClick = (event) => {
        const point = event.points && event.points[0];
        if (!point) return;
        const i = position.get(Number(point.x));
        if (i === undefined) return;
        const region = typeof point.y === "string" ? point.y : point.data.name;
        model.set("region", region);
        seekIndex(i);
      };
      heatmapDiv.on("plotly_click", onClick);
      seriesDiv.on("plotly_click", onClick);
      const follow = () => { moveCursor(heatmapDiv, heatCursor, index()); moveCursor(seriesDiv, seriesCursor, index()); moveRowBox(); };
      heatmapDiv.on("plotly_relayout", follow);
      seriesDiv.on("plotly_relayout", follow);
      showFrame();
      root.dataset.ready = "1";
    })
    .catch((error) => {
      messages.append(h("div", { class: "xe-message xe-error", text: `The explorer could not start: ${error}` }));
      root.dataset.error = String(error);
      throw error;
    });
  if (model.get("playing")) onPlaying();

  return () => {
    stopped = true;
    if (raf !== null) cancelAnimationFrame(raf);
    for (const f of disposers) f();
    if (Plotly) { Plotly.purge(heatmapDiv); Plotly.purge(seriesDiv); }
  };
}

export default { render };
