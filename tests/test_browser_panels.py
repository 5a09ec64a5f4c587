"""The Explorer's panels in a real browser (Debian's Chromium driven by Playwright), from
standalone HTML: the evaluation panel's curves and score table, names carrying markup,
and frames without a face. The player, the heatmap and JupyterLab are in
``test_browser.py``; the ``browser`` fixture is in ``conftest.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import expresso_xai as ex
from expresso_xai.testing import new_page, open_explorer
from expresso_xai.testing.browser import click_heatmap_cell, heatmap_rows

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "browser"


# --- the evaluation panel (standalone HTML) -------------------------------------------

EVALUATED = ["gradcam", "integrated_gradients", "saliency"]


def _evaluation_page(browser, tmp_path, evaluation, name: str):
    """The standalone Explorer of a small cube with ``evaluation``, opened; its page and
    the list where uncaught errors and console errors go."""
    from expresso_xai.testing import example_cube

    cube = example_cube(explainers=EVALUATED, pixels=True)
    path = ex.widgets.Explorer(cube, evaluation=evaluation).save_html(tmp_path / f"{name}.html")
    errors: list = []
    page = new_page(browser, errors)
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    open_explorer(page, path)
    return page, errors


def shown_curves(page) -> dict:
    """Per method panel, the curves drawn: ``{explainer: {order: y}}`` from the figure's
    data, and how many traces plotly drew in the page (curves and the band)."""
    return page.eval_on_selector_all(".xe-eval-panel", """panels => Object.fromEntries(panels.map(p => {
        const plot = p.querySelector('.xe-eval-plot');
        const curves = Object.fromEntries(plot.data.filter(t => t.meta.role === 'curve').map(t => [t.meta.order, t.y]));
        return [p.dataset.explainer, {curves, drawn: plot.querySelectorAll('.scatterlayer .trace').length,
                                      bands: plot.data.filter(t => t.meta.role === 'band').length}];
    }))""")


def shown_table(page) -> dict:
    """The score table as drawn: metric columns, rows, the cells' text and best cells."""
    return page.eval_on_selector(".xe-eval-table", """table => {
      const headers = [...table.querySelectorAll('th[data-metric]')];
      return {
        metrics: headers.map(th => th.dataset.metric),
        titles: Object.fromEntries(headers.map(th => [th.dataset.metric, th.title])),
        headers: Object.fromEntries(headers.map(th => [th.dataset.metric, th.textContent])),
        rows: [...table.querySelectorAll('tbody tr')].map(tr => tr.dataset.explainer),
        cells: [...table.querySelectorAll('td[data-metric]')].map(td => ({
            explainer: td.dataset.explainer, metric: td.dataset.metric, best: td.classList.contains('xe-best'),
            text: td.querySelector('.xe-score-value').textContent,
            mark: td.querySelector('.xe-pass') ? 'pass' : td.querySelector('.xe-fail') ? 'fail' : ''})),
        images: table.querySelectorAll('img').length,
      };
    }""")


def test_evaluation_panel_shows_the_curves_and_the_table(browser, tmp_path):
    from expresso_xai.testing import example_evaluation

    ev = example_evaluation(explainers=EVALUATED)
    # planted so that the lowest (best) mprt_spearman is not the highest, and markup in a definition
    ev["score"].loc[dict(metric="mprt_spearman")] = [0.62, 0.08, 0.31]
    definitions = json.loads(ev.attrs["metric_definitions"])
    definitions["relevance_mass"]["definition"] = "<img src=x onerror=\"document.title='pwned'\"> share inside"
    ev = ev.assign_attrs(metric_definitions=json.dumps(definitions))
    page, errors = _evaluation_page(browser, tmp_path, ev, "evaluation")
    try:
        page.wait_for_selector(".xe-eval-curves[data-kind='deletion']", timeout=10_000)
        assert page.is_visible(".xe-evaluation") and page.is_visible(".xe-eval-table")

        # one curve per method and order for the selected kind, the dataset's values, the random band
        for kind in ("deletion", "insertion"):
            if kind != "deletion":
                page.select_option(".xe-eval-kind", kind)
                page.wait_for_selector(f".xe-eval-curves[data-kind='{kind}']", timeout=5000)
            curves = shown_curves(page)
            assert list(curves) == EVALUATED
            for name, shown in curves.items():
                assert list(shown["curves"]) == ["morf", "lerf", "random"]
                assert shown["bands"] == 1 and shown["drawn"] == 4  # three curves and the band
                for order, y in shown["curves"].items():
                    assert y == pytest.approx(ev.curve.sel(explainer=name, kind=kind, order=order).values.tolist())

        table = shown_table(page)
        assert table["rows"] == EVALUATED and sorted(table["metrics"]) == sorted(ev.metric.values.tolist())
        assert len(table["cells"]) == len(EVALUATED) * ev.sizes["metric"]
        for name in EVALUATED:  # one column per metric, in the dataset's order
            assert [c["metric"] for c in table["cells"] if c["explainer"] == name] == ev.metric.values.tolist()
        for cell in table["cells"]:
            value = float(ev.score.sel(explainer=cell["explainer"], metric=cell["metric"]))
            assert abs(float(cell["text"]) - value) <= 0.5e-3 + 1e-12, (cell, value)  # shown with 3 decimals
            passed = float(ev.passed.sel(explainer=cell["explainer"], metric=cell["metric"]))
            assert cell["mark"] == ("" if np.isnan(passed) else "pass" if passed else "fail"), cell
        best = {c["metric"]: c["explainer"] for c in table["cells"] if c["best"]}
        assert best["mprt_spearman"] == "integrated_gradients"  # lower is better: the smallest
        assert "↓" in table["headers"]["mprt_spearman"] and "↑" in table["headers"]["deletion_morf"]
        assert "shuffled_frames" not in best  # no direction, no best
        # the definitions are tooltips, as text: the markup in one is shown, never run
        assert definitions["deletion_morf"]["definition"] in table["titles"]["deletion_morf"]
        assert "<img src=x" in table["titles"]["relevance_mass"] and table["images"] == 0
        assert page.title() != "pwned"

        # a click on a row shows that method above
        page.click(".xe-eval-row[data-explainer='saliency'] th")
        page.wait_for_function("() => document.querySelector('.xe-compare-item.xe-selected').dataset.explainer "
                               "=== 'saliency'", timeout=5000)
        assert page.get_attribute(".xe-eval-panel.xe-selected", "data-explainer") == "saliency"

        page.select_option(".xe-eval-kind", "deletion")
        page.wait_for_selector(".xe-eval-curves[data-kind='deletion']", timeout=5000)
        page.locator(".xe-evaluation").screenshot(path=ARTIFACTS / "evaluation_panel.png")
        assert not errors, errors
    finally:
        page.close()


def test_an_evaluation_without_curves_shows_only_the_table(browser, tmp_path):
    from expresso_xai.testing import example_evaluation

    ev = example_evaluation(explainers=EVALUATED).drop_vars(["curve", "curve_ci"])
    page, errors = _evaluation_page(browser, tmp_path, ev, "evaluation_table")
    try:
        assert page.is_visible(".xe-eval-table") and page.locator(".xe-eval-curves").count() == 0
        assert shown_table(page)["rows"] == EVALUATED
        page.locator(".xe-evaluation").screenshot(path=ARTIFACTS / "evaluation_table_only.png")
        assert not errors, errors
    finally:
        page.close()


# --- what a page shows of names it did not choose -------------------------------------

SCRIPT_IN_NAME = "</script><script>window.__pwned=1</script>"
IMG_IN_NAME = '<img src=x onerror="window.__pwned=1">'
BOLD_IN_NAME = "<b>bold</b>"  # markup plotly itself would draw (as bold text) in its labels


def _cube_with_markup_everywhere():
    """An example cube whose explainers, two regions, model, video file and other attrs
    carry markup, and whose model predicted outside its declared range (a caution)."""
    from expresso_xai.cube.views import range_caution
    from expresso_xai.testing import example_cube

    explainers = [f"gradcam{SCRIPT_IN_NAME}{BOLD_IN_NAME}", f"saliency{IMG_IN_NAME}"]
    cube = example_cube(explainers=explainers, pixels=True)
    renamed = {"mouth": f"mouth{SCRIPT_IN_NAME}", "nose": f"nose{IMG_IN_NAME}", "jaw": f"jaw{BOLD_IN_NAME}"}
    cube = cube.assign_coords(region=[renamed.get(r, r) for r in cube.region.values.tolist()])
    cube = cube.assign_coords(clip=[0]).assign(clip_start=("clip", [0]), clip_prediction=("clip", [99.0]),
                                               prediction_out_of_range=("clip", [True]))
    cube = cube.assign_attrs(model_name=f"model{SCRIPT_IN_NAME}{IMG_IN_NAME}",
                             video_source=f"/videos/clip{IMG_IN_NAME}.mp4", model_output_range="[0, 63]",
                             region_scheme=f"partition{SCRIPT_IN_NAME}", model_weights=IMG_IN_NAME)
    assert range_caution(cube)
    return cube, explainers, list(renamed.values())


def test_markup_in_every_name_shows_as_text_and_runs_nothing(browser, tmp_path):
    """Names, file names and attrs with </script> and <img onerror> in the standalone
    page: nothing runs, no element is made of them, and each shows as written."""
    from expresso_xai.cube.views import range_caution

    cube, explainers, regions = _cube_with_markup_everywhere()
    path = ex.widgets.Explorer(cube).save_html(tmp_path / "markup.html")
    errors: list = []
    page = new_page(browser, errors)
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    try:
        open_explorer(page, path)
        title = f"model{SCRIPT_IN_NAME}{IMG_IN_NAME} on clip{IMG_IN_NAME}.mp4"
        shown = page.evaluate("""() => ({
            pwned: typeof window.__pwned, images: document.querySelectorAll('img').length,
            scripts: document.querySelectorAll('script').length, title: document.title,
            header: document.querySelector('.xe-title').textContent,
            options: [...document.querySelectorAll('.xe-method option')].map(o => o.textContent),
            captions: [...document.querySelectorAll('.xe-compare-item figcaption')].map(c => c.textContent),
            agreement: [...document.querySelectorAll('.xe-agreement-table tr:first-child th')].map(t => t.textContent),
            plotTitle: document.querySelector('.xe-heatmap .gtitle').textContent,
            legend: [...document.querySelectorAll('.xe-series .legendtext')].map(t => t.textContent),
            caution: [...document.querySelectorAll('.xe-caution')].map(c => c.textContent),
        })""")
        assert shown["pwned"] == "undefined" and shown["images"] == 0 and shown["scripts"] == 3, shown
        assert shown["title"] == shown["header"] == title
        assert shown["options"] == explainers and shown["agreement"][1:] == explainers
        assert [caption.split(" · ")[0] for caption in shown["captions"]] == explainers
        assert shown["plotTitle"].startswith(f"{explainers[0]}: density")
        assert set(regions) <= set(heatmap_rows(page)[1]) and set(regions) <= set(shown["legend"])
        assert shown["caution"] == [f"Caution: {range_caution(cube)}"]
        # a click on a row with markup in its name picks that region, named as written
        click_heatmap_cell(page, 5, regions[0])
        page.wait_for_function("() => document.querySelector('.xe-frame-label').dataset.frame === '5'", timeout=5000)
        assert page.text_content(".xe-region-label").startswith(f"{regions[0]}: ")
        page.locator(".xe").screenshot(path=ARTIFACTS / "markup_in_names.png")
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert not errors, errors
    finally:
        page.close()


def test_a_frame_without_a_face_has_no_top_region(browser, tmp_path):
    """Frame 3 of the example cube has no face: all its pixels are background, so no
    facial region can top it (its zeros would put right_eye, the first row, on top)."""
    from expresso_xai.testing import example_cube

    path = ex.widgets.Explorer(example_cube(pixels=True), value="attribution").save_html(tmp_path / "noface.html")
    errors: list = []
    page = new_page(browser, errors)
    try:
        open_explorer(page, path)
        labels = {}
        for frame in (2, 3, 4):
            page.fill(".xe-slider", str(frame))
            page.wait_for_function(f"() => document.querySelector('.xe-frame-label').dataset.frame === '{frame}'",
                                   timeout=5000)
            labels[frame] = (page.text_content(".xe-region-label"),
                             page.eval_on_selector_all(".xe-compare-item figcaption", "cs => cs.map(c => c.textContent)"))
        assert labels[3][0].startswith("top region: none (no face in this frame)"), labels[3]
        assert all(caption.endswith("top: none (no face in this frame)") for caption in labels[3][1]), labels[3]
        for frame in (2, 4):  # the planted signal is in the mouth
            assert labels[frame][0].startswith("top region: mouth"), labels[frame]
            assert all(caption.endswith("top: mouth") for caption in labels[frame][1]), labels[frame]
        assert not errors, errors
    finally:
        page.close()
