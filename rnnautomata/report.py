"""One self-contained HTML report of a run: ``RUN/report.html``.

Everything is inline (SVG, PNG as base64, CSS, JavaScript): the file opens with no network access
and can be mailed or attached as a CI artefact. Sections:

1. summary and the study settings (the study.toml text);
2. the merge timeline (losses, merged and minimised states, accuracy on long strings, phases);
3. a slider over the checkpoints showing the machine at each, with states pinned in place so they
   visibly merge (machines larger than ``max_states`` are drawn minimised; identical drawings are
   stored once, and all drawings travel gzip-compressed, unpacked by the browser's
   ``DecompressionStream``);
4. the final machine (minimised, and as extracted when small enough) and the merge history;
5. the fidelity and generalisation table: per checkpoint, states, finiteness, losses and the
   network's accuracy by string length.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rnnautomata import __version__
from rnnautomata.automata import Machine, MachineError
from rnnautomata.html_page import CSS, fmt
from rnnautomata.render import (
    PHASE_COLOURS,
    PINNED_MAX_GAP,
    choose_drawn,
    clean_svg,
    dot_to_svgs,
    machine_dot,
    open_run,
    plot_timeline,
    read_dynamics,
    stable_positions,
    styled_dot,
)
from rnnautomata.runs import atomic_write_text

__all__ = ["REPORT_MAX_STATES", "write_report"]

#: Machines with more states than this are shown minimised in the report's slider.
REPORT_MAX_STATES = 80


def _phase_of(step: int, phases: Sequence[Mapping[str, Any]]) -> str:
    name = ""
    for phase in phases:  # phases share boundary steps; the later phase wins
        if phase["start_step"] <= step <= phase["end_step"]:
            name = phase["name"]
    return name


def _checkpoint_drawings(run, checkpoints: Sequence[Mapping[str, Any]], max_states: int,
                         progress: bool) -> tuple[list[str], list[int], list[str]]:
    """HTML fragments of the distinct drawings, each checkpoint's drawing index (-1: none), and a
    note per checkpoint (e.g. that the drawing is minimised)."""
    machines: list[Machine | None] = []
    for ck in checkpoints:
        path = run.automaton_path(int(ck["step"]))
        try:
            machines.append(Machine.load(path) if path.is_file() else None)
        except MachineError:
            machines.append(None)
    chosen = [None if m is None else choose_drawn(m, max_states) for m in machines]
    drawn = [c[0] for c in chosen if c is not None]
    positions = iter(stable_positions(drawn, max_gap=PINNED_MAX_GAP)) if drawn else iter(())
    dots: list[str] = []
    index_of: dict[str, int] = {}
    which, notes = [], []
    for choice in chosen:
        if choice is None:
            which.append(-1)
            notes.append("no extracted machine at this checkpoint")
            continue
        shown, note, compact = choice
        dot = styled_dot(shown, next(positions), "", compact)
        if dot not in index_of:
            index_of[dot] = len(dots)
            dots.append(dot)
        which.append(index_of[dot])
        notes.append(note or "")
    svgs = dot_to_svgs(dots, progress=progress)
    fragments = [svg if svg is not None else f'<pre class="dot">{html.escape(dot)}</pre>'
                 for svg, dot in zip(svgs, dots)]
    return fragments, which, notes


def _figure_svg(dynamics: Mapping[str, Any], title: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        (path,) = plot_timeline(dynamics, Path(tmp) / "timeline", formats=("svg",), title=title)
        svg = path.read_text(encoding="utf-8")
    svg = clean_svg(svg)
    # matplotlib writes width/height in pt; let CSS size it
    return svg


def _history_png(dynamics: Mapping[str, Any]) -> str | None:
    from rnnautomata.history import draw_merge_history, merge_history_graph

    try:
        graph = merge_history_graph(dynamics)
    except ValueError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        (path,) = draw_merge_history(graph, Path(tmp) / "history", formats=("png",))
        data = path.read_bytes()
    return base64.b64encode(data).decode("ascii")


def _final_machine_html(run, last_step: int, max_states: int) -> str:
    dots = []
    robust_path = run.robust_automaton_path(last_step)
    if robust_path.is_file():
        rob = Machine.load(robust_path)
        dots.append(machine_dot(rob, max_states=max_states,
                                title=f"ε-free (consistent merging + refinement): {rob.n_states} states"))
    path = run.automaton_path(last_step)
    if path.is_file():
        machine = Machine.load(path)
        minimal = machine.minimize()
        dots.append(machine_dot(minimal, max_states=max_states,
                                title=f"ε rule, minimised: {minimal.n_states} states"))
        if machine.n_states <= max_states and machine.n_states != minimal.n_states:
            dots.append(machine_dot(machine, max_states=max_states,
                                    title=f"ε rule, as extracted: {machine.n_states} states"))
    if not dots:
        return "<p>No extracted machine at the last checkpoint.</p>"
    parts = []
    for svg, dot in zip(dot_to_svgs(dots), dots):
        parts.append(f'<div class="drawing">{svg}</div>' if svg is not None
                     else f'<pre class="dot">{html.escape(dot)}</pre>')
    return "".join(parts)


def _step_range(first, last, n, total) -> str:
    if not n:
        return f"none of {total} checkpoints"
    return f"steps {first:,}–{last:,} ({n} of {total} checkpoints)" if first != last else f"step {first:,} (1 of {total})"


def _summary_rows(manifest: Mapping[str, Any], dyn: Mapping[str, Any]) -> list[tuple[str, str]]:
    ck = dyn["checkpoints"]
    final = dyn.get("final") or {}
    rows = [("status", fmt(manifest.get("status"))), ("checkpoints", f"{len(ck)} (steps {ck[0]['step']:,}–{ck[-1]['step']:,})"),
            ("merger, ε, probe depth", f"{fmt(dyn.get('merger'))}, {fmt(dyn.get('epsilon'))}, {fmt(dyn.get('depth'))}"),
            ("peak merged states", fmt(max(c["n_states"] for c in ck))),
            ("finite from step", fmt(dyn.get("finite_from_step")))]
    lengths = sorted({k for c in ck for k in (c.get("acc_by_length") or {})}, key=int)
    generalises = None
    for i in range(len(ck) - 1, -1, -1):  # first step from which every measured accuracy is 1
        acc = ck[i].get("acc_by_length") or {}
        if not acc or any(v is not None and v < 1.0 for v in acc.values()):
            break
        generalises = ck[i]["step"]
    if lengths:
        rows.append((f"100% accuracy on every length measured ({', '.join(lengths)}; longer ones less often) from step",
                     fmt(generalises)))
    rows.append(("final machine", f"{fmt(ck[-1]['n_states'])} merged states, {fmt(ck[-1]['n_states_min'])} minimised, "
                 f"{'finite' if ck[-1]['finite'] else 'not finite'}"))
    robust = final.get("robust")
    if robust:
        rows.append(("final ε-free machine", f"{fmt(robust['n_states'])} states, agrees with the network on "
                     f"{fmt(robust['agreement'], 5)} of checked positions ({fmt(robust['rounds'])} refinement rounds)"))
    if "equivalent_to_truth" in final:
        witness = final.get("counterexample")
        which = "ε-free machine" if final.get("machine") == "robust" else "machine"
        rows.append((f"final {which} equivalent to the task's machine",
                     fmt(final["equivalent_to_truth"]) + (f" (truth: {fmt(final.get('truth_states'))} states)")
                     + ("" if witness is None else f"; shortest counterexample {html.escape(repr(witness))}")))
    eps = final.get("epsilon_rule")
    if robust and eps:
        witness = eps.get("counterexample")
        rows.append(("final ε-rule machine equivalent to the task's machine",
                     f"{fmt(eps['equivalent_to_truth'])} ({fmt(eps['n_states_min'])} minimised states)"
                     + ("" if witness is None else f"; shortest counterexample {html.escape(repr(witness))}")))
    v = dyn.get("verdicts")
    if v:
        total = v["n_checkpoints"]
        rows.append(("ε-free machine equivalent to the truth at",
                     _step_range(v["first_equivalent_step"], v["last_equivalent_step"], v["n_equivalent"], total)))
        rows.append(("ε-free machine matches the network on long strings at",
                     _step_range(v["first_faithful_step"], v["last_faithful_step"], v["n_faithful"], total)))
        rows.append(("best checkpoint", f"step {v['best_step']:,}: {html.escape(v['best_reason'])}"))
    return rows


def _table_html(dyn: Mapping[str, Any]) -> str:
    ck = dyn["checkpoints"]
    phases = dyn.get("phases") or []
    lengths = sorted({k for c in ck for k in (c.get("acc_by_length") or {})}, key=int)
    with_robust = any(c.get("robust") for c in ck)
    head = (["#", "step", "epoch", "phase", "merged states", "minimised", "finite", "merges"]
            + (["ε-free states", "ε-free agreement", "ε-free = truth"] if with_robust else [])
            + ["train loss", "val loss"] + [f"acc len {int(k):,}" for k in lengths])
    rows = ["<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for i, c in enumerate(ck):
        acc = c.get("acc_by_length") or {}
        merges = sum(len(e["from"]) - 1 for e in (c.get("merged") or []))
        cells = [str(i), f"{c['step']:,}", fmt(c.get("epoch"), 4), _phase_of(c["step"], phases),
                 fmt(c["n_states"]), fmt(c["n_states_min"]), fmt(c["finite"]), fmt(merges)]
        if with_robust:
            r = c.get("robust") or {}
            cells += [fmt(r.get("n_states")), fmt(r.get("agreement"), 5), fmt(r.get("equivalent_to_truth"))]
        cells += [fmt(c.get("train_loss")), fmt(c.get("val_loss"))] + [fmt(acc.get(k)) for k in lengths]
        cls = "finite" if c["finite"] else "open"
        rows.append(f'<tr class="{cls}" data-index="{i}">' + "".join(f"<td>{x}</td>" for x in cells) + "</tr>")
    return '<table id="ckpt-table">' + "".join(rows) + "</table>"


def _phase_bar(dyn: Mapping[str, Any]) -> str:
    """Coloured segments under the slider, one per phase, sized by number of checkpoints."""
    ck = dyn["checkpoints"]
    n = len(ck)
    if n < 2:
        return ""
    steps = [c["step"] for c in ck]
    parts = []
    for phase in dyn.get("phases") or []:
        first = next((i for i, s in enumerate(steps) if s >= phase["start_step"]), n - 1)
        last = max((i for i, s in enumerate(steps) if s <= phase["end_step"]), default=first)
        left, width = 100 * first / n, 100 * (last - first + 1) / n  # one slot per checkpoint
        parts.append(f'<span title="{html.escape(phase["name"])}" style="left:{left:.2f}%;width:{width:.2f}%;'
                     f'background:{PHASE_COLOURS.get(phase["name"], "#eee")}">{html.escape(phase["name"])}</span>')
    return '<div class="phasebar">' + "".join(parts) + "</div>"


_JS = """
(function () {
  "use strict";
  var meta = JSON.parse(document.getElementById("ckpt-data").textContent);
  var slider = document.getElementById("ckpt-slider");
  var view = document.getElementById("machine-view");
  var info = document.getElementById("ckpt-info");
  var note = document.getElementById("ckpt-note");
  var rows = document.querySelectorAll("#ckpt-table tr[data-index]");
  var drawings = null, timer = null;

  function fmt(x) { return x === null || x === undefined ? "\\u2013" : (typeof x === "number" && !Number.isInteger(x) ? x.toPrecision(3) : String(x)); }

  function show(i) {
    var c = meta[i];
    if (!c) { return; }
    slider.value = i;
    var acc = Object.keys(c.acc).map(function (k) { return "len " + k + ": " + fmt(c.acc[k]); }).join(", ");
    info.innerHTML = "<b>step " + c.step.toLocaleString() + "</b> (checkpoint " + (i + 1) + " of " + meta.length +
      ", epoch " + fmt(c.epoch) + ", " + (c.phase || "\\u2013") + ") \\u00b7 <b>" + c.n_states + "</b> merged states, <b>" +
      c.n_states_min + "</b> minimised, " + (c.finite ? "finite" : "not finite") + " \\u00b7 " + c.merges +
      " states merged since the previous checkpoint<br>train loss " + fmt(c.train_loss) + ", val loss " + fmt(c.val_loss) +
      (acc ? " \\u00b7 accuracy " + acc : "");
    note.textContent = c.note;
    if (c.d < 0) { view.innerHTML = "<p>no drawing</p>"; }
    else if (drawings) { view.innerHTML = drawings[c.d]; fit(); }
    view.setAttribute("data-drawing", String(c.d));
    view.setAttribute("data-step", String(c.step));
    for (var r = 0; r < rows.length; r++) { rows[r].classList.toggle("current", r === i); }
  }

  // Each drawing's SVG is sized to its own machine (width/height in pt). Show it at that size,
  // shrunk only to fit the viewer ("fit"), or exactly at that size ("full size").
  function fit() {
    var svg = view.querySelector("svg");
    if (!svg) { return; }
    var w = parseFloat(svg.getAttribute("width")) * 4 / 3, h = parseFloat(svg.getAttribute("height")) * 4 / 3;  // pt -> px
    if (!(w > 0 && h > 0)) { return; }
    var scale = view.classList.contains("actual") ? 1 :
      Math.min(1, Math.max(view.clientWidth - 4, 100) / w, Math.max(window.innerHeight * 0.62 - 4, 100) / h);
    svg.style.width = (w * scale).toFixed(1) + "px";
    svg.style.height = (h * scale).toFixed(1) + "px";
  }

  function decode(b64) {
    var bin = atob(b64), bytes = new Uint8Array(bin.length);
    for (var k = 0; k < bin.length; k++) { bytes[k] = bin.charCodeAt(k); }
    if (typeof DecompressionStream === "undefined") {
      return Promise.reject(new Error("this browser cannot unpack the drawings (no DecompressionStream)"));
    }
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).text().then(JSON.parse);
  }

  slider.addEventListener("input", function () { show(+slider.value); });
  document.getElementById("prev").addEventListener("click", function () { show(Math.max(0, +slider.value - 1)); });
  document.getElementById("next").addEventListener("click", function () { show(Math.min(meta.length - 1, +slider.value + 1)); });
  document.getElementById("play").addEventListener("click", function (e) {
    if (timer) { clearInterval(timer); timer = null; e.target.textContent = "\\u25b6 play"; return; }
    if (+slider.value >= meta.length - 1) { show(0); }
    e.target.textContent = "\\u275a\\u275a pause";
    timer = setInterval(function () {
      var i = +slider.value + 1;
      if (i >= meta.length) { clearInterval(timer); timer = null; e.target.textContent = "\\u25b6 play"; return; }
      show(i);
    }, 350);
  });
  document.getElementById("zoom").addEventListener("click", function (e) {
    var actual = view.classList.toggle("actual");
    e.target.textContent = actual ? "fit" : "full size";
    fit();
  });
  window.addEventListener("resize", fit);
  for (var r = 0; r < rows.length; r++) {
    rows[r].addEventListener("click", function () {
      show(+this.getAttribute("data-index"));
      document.getElementById("slider-section").scrollIntoView({behavior: "smooth"});
    });
  }
  show(+slider.value);
  decode(document.getElementById("drawings-data").textContent.trim()).then(function (d) {
    drawings = d; document.body.setAttribute("data-drawings-ready", "1"); show(+slider.value);
  }).catch(function (err) {
    view.textContent = "Drawings unavailable: " + err.message;
    document.body.setAttribute("data-drawings-ready", "failed");
  });
})();
"""


def write_report(run_dir: str | Path, *, max_states: int = REPORT_MAX_STATES, progress: bool = True,
                 out: str | Path | None = None) -> Path:
    """Write the self-contained HTML report of a run.

    Parameters
    ----------
    run_dir : path
        An automata run directory with dynamics.json and automata/ (``rnnautomata track``).
    max_states : int
        Checkpoint machines with more states are shown minimised in the slider.
    progress : bool
        A tqdm bar while drawing many checkpoints.
    out : path, optional
        Where to write (default ``RUN/report.html``).

    Returns
    -------
    Path
        The report file.

    Raises
    ------
    CheckpointError
        If the run directory or its dynamics.json is missing or not ours.
    """
    run = open_run(run_dir)
    manifest = run.read_manifest()
    dyn = read_dynamics(run.root)
    ck = dyn["checkpoints"]
    name = manifest.get("name") or run.root.name
    study_text = run.study_path.read_text(encoding="utf-8") if run.study_path.is_file() else "(no study.toml)"

    fragments, which, notes = _checkpoint_drawings(run, ck, max_states, progress)
    packed = base64.b64encode(gzip.compress(json.dumps(fragments).encode("utf-8"), compresslevel=9, mtime=0))
    phases = dyn.get("phases") or []
    meta = [{"step": c["step"], "epoch": c.get("epoch"), "phase": _phase_of(c["step"], phases),
             "n_states": c["n_states"], "n_states_min": c["n_states_min"], "finite": bool(c["finite"]),
             "merges": sum(len(e["from"]) - 1 for e in (c.get("merged") or [])),
             "train_loss": c.get("train_loss"), "val_loss": c.get("val_loss"),
             "acc": c.get("acc_by_length") or {}, "d": d, "note": note}
            for c, d, note in zip(ck, which, notes)]
    meta_json = json.dumps(meta).replace("</", "<\\/")

    timeline = _figure_svg(dyn, f"{name}: merge timeline")
    history = _history_png(dyn)
    final = _final_machine_html(run, ck[-1]["step"], max(max_states, 200))
    summary = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in _summary_rows(manifest, dyn))

    body = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(name)} · rnnautomata report</title>
<link rel="icon" href="data:,">
<style>{CSS}</style></head>
<body><main>
<h1>{html.escape(name)}</h1>
<p class="sub">rnnautomata {html.escape(__version__)} report · run written by version {fmt(manifest.get('package_version'))} ·
task {fmt(dyn.get('task'))}</p>
<table class="summary">{summary}</table>
<details><summary>Study settings (study.toml)</summary><pre>{html.escape(study_text)}</pre></details>

<h2>Timeline</h2>
<div class="figure">{timeline}</div>

<h2 id="slider-section">The machine at each checkpoint</h2>
<div class="viewer">
<div class="controls"><button id="prev" title="previous checkpoint">&#9664;</button>
<input type="range" id="ckpt-slider" min="0" max="{len(ck) - 1}" value="0" step="1" aria-label="checkpoint">
<button id="next" title="next checkpoint">&#9654;</button><button id="play">&#9654; play</button>
<button id="zoom" title="toggle between fitting the drawing and its full size">full size</button></div>
{_phase_bar(dyn)}
<div id="ckpt-info"></div><div id="ckpt-note"></div>
<div id="machine-view" data-drawing="-1"></div>
<p class="sub">States stay where their shortest access string sits in one prefix tree laid out for all
checkpoints, so merging states disappear into others instead of jumping. Colour = output; thick outline
and arrow = start; dashed grey stubs = open transitions (never seen inside the probed tree).
Use the arrow keys on the slider.</p>
</div>

<h2>Final machine</h2>
{final}

<h2>Merge history</h2>
{f'<div class="figure"><img alt="merge history" src="data:image/png;base64,{history}"></div>' if history else '<p>unavailable</p>'}

<h2>Fidelity and generalisation</h2>
<p class="sub">Accuracy is the network's (last output on random strings of each length), beside the
extracted machine's finiteness: the two can come apart. Click a row to show its machine.</p>
<div class="tablewrap">{_table_html(dyn)}</div>
</main>
<script type="application/json" id="ckpt-data">{meta_json}</script>
<script type="application/octet-stream" id="drawings-data">{packed.decode('ascii')}</script>
<script>{_JS}</script>
</body></html>
"""
    path = Path(out) if out is not None else run.root / "report.html"
    atomic_write_text(path, body)
    return path
