"""Across checkpoints: state counts, finiteness, merge events and the phases of training.

:func:`track` probes every checkpoint of a run, merges the hidden states with one ε for the whole
trajectory, extracts a machine per checkpoint, and records how the machine changes:

- ``n_states`` (merged states) and ``n_states_min`` (after minimisation) side by side;
- ``finite``: every transition of the extracted machine closes inside the probed tree;
- ``congruence``: the fraction of (state, symbol) pairs whose in-tree children all lie in one
  state (:mod:`rnnautomata.congruence`); 1 for a recurrent map's exact partition, not forced for a
  transformer;
- ``successor``: for each state of the previous checkpoint, the state its prefixes mostly moved
  to, and ``merged``: groups of previous states that became one;
- the network's behaviour (train/val loss, accuracy on long strings) beside it, so finiteness and
  behavioural generalisation can be seen to agree or come apart;
- ``phases``: from a small init every state starts close to every other, so the machine at step 0
  can look finite with a handful of states; training then spreads the states into a prefix tree
  (*tree*), states merge (*merging*) and the machine closes for good (*finite*). The step from which
  it stays finite is ``finite_from_step``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from rnnautomata.config import read_toml, study_from_dict
from rnnautomata.congruence import congruence
from rnnautomata.errors import CheckpointError
from rnnautomata.extract import extract_machine, fidelity
from rnnautomata.merge import epsilon_from_states, merger_for, uses_epsilon
from rnnautomata.probe import ProbeResult, prefix_tree, prefix_tree_from_strings, probe, state_view
from rnnautomata.runs import RunDir, atomic_write_json, file_digest
from rnnautomata.train import load_model

__all__ = ["DYNAMICS_FORMAT", "unsupervised_length", "successor_map", "merge_events", "phases", "finite_from", "verdicts",
           "track", "read_dynamics", "nerode_over_run"]

DYNAMICS_FORMAT = "rnnautomata.dynamics/1"


def successor_map(prev_labels: np.ndarray, labels: np.ndarray, n_prev: int) -> list[int]:
    """For each previous state, the current state most of its prefixes now belong to.

    Parameters
    ----------
    prev_labels, labels : (N,) state of every probed prefix at the previous and current checkpoint.
    n_prev : number of previous states.

    Returns
    -------
    list of length ``n_prev`` (ties go to the smaller state id; -1 for a state with no prefix).
    """
    out = [-1] * n_prev
    order = np.lexsort((labels, prev_labels))
    pairs = np.stack([prev_labels[order], labels[order]], axis=1)  # (N, 2)
    uniq, counts = np.unique(pairs, axis=0, return_counts=True)
    best: dict[int, tuple[int, int]] = {}
    for (p, c), k in zip(uniq.tolist(), counts.tolist()):
        if p not in best or k > best[p][0]:
            best[p] = (k, c)
    for p, (_, c) in best.items():
        out[p] = c
    return out


def merge_events(successor: Sequence[int]) -> list[dict]:
    """Groups of previous states that became one: ``[{"from": [...], "into": s}, ...]``."""
    groups: dict[int, list[int]] = {}
    for p, s in enumerate(successor):
        if s >= 0:
            groups.setdefault(s, []).append(p)
    return [{"from": sorted(ps), "into": s} for s, ps in sorted(groups.items()) if len(ps) > 1]


def finite_from(steps: Sequence[int], finite: Sequence[bool]) -> int | None:
    """The first step from which every later checkpoint is finite (None if the last is not)."""
    if not finite or not finite[-1]:
        return None
    j = len(finite) - 1
    while j > 0 and finite[j - 1]:
        j -= 1
    return int(steps[j])


def phases(steps: Sequence[int], n_states: Sequence[int], finite: Sequence[bool]) -> list[dict]:
    """Split training into phases: initial (finite from a small init), tree, merging, finite.

    *initial*: from step 0 while the machine is still finite; *tree*: from its first infinite
    checkpoint to the peak state count; *merging*: from the peak to ``finite_from_step`` (for a run
    that never closes: only if the count at least halves after its peak, else the tree phase runs
    to the end); *finite*: from then on. Phases that do not occur are left out.
    """
    steps, n_states, finite = list(steps), list(n_states), list(finite)
    if not steps:
        return []
    out = []
    last = len(steps) - 1
    first_inf = next((i for i, f in enumerate(finite) if not f), None)
    ff = finite_from(steps, finite)
    ff_idx = steps.index(ff) if ff is not None else None
    if first_inf is None:
        return [{"name": "finite", "start_step": steps[0], "end_step": steps[last]}]
    if first_inf > 0:
        out.append({"name": "initial", "start_step": steps[0], "end_step": steps[first_inf - 1]})
    end_inf = (ff_idx - 1) if ff_idx is not None else last
    window = range(first_inf, end_inf + 1)
    peak = max(window, key=lambda i: (n_states[i], -i))
    # without closing, call it merging only once the count has at least halved from its peak
    merged_down = min(n_states[peak:end_inf + 1]) * 2 <= n_states[peak]
    if ff_idx is None and not merged_down:
        out.append({"name": "tree", "start_step": steps[first_inf], "end_step": steps[end_inf]})
        return out
    out.append({"name": "tree", "start_step": steps[first_inf], "end_step": steps[peak]})
    if peak < end_inf or ff_idx is not None:
        out.append({"name": "merging", "start_step": steps[peak], "end_step": steps[end_inf if ff_idx is None else ff_idx]})
    if ff_idx is not None:
        out.append({"name": "finite", "start_step": steps[ff_idx], "end_step": steps[last]})
    return out


@dataclass(frozen=True)
class _Probed:
    step: int
    epoch: float
    result: ProbeResult
    model: object = None


def _probe_all(run: RunDir, steps: list[int], study, device: str, progress: bool) -> tuple[list[_Probed], object]:
    task = None
    tree = None
    out = []
    iterator = steps
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(steps, desc="probe", unit="ckpt")
    for step in iterator:
        model, info = load_model(run.root, step, device=device)
        task = info["task"]
        if tree is None:
            if study.probe.mode == "enumerate":
                tree = prefix_tree(task.n_symbols, study.probe.depth)
            else:
                rng = np.random.default_rng((study.seed, 3_000_017))
                tree = prefix_tree_from_strings(task.sample(rng, study.probe.samples, study.probe.depth), task.n_symbols)
        pc = study.probe  # a transformer's state options (docs/transformers.md); the model itself by default
        model = state_view(model, tree, pc.state, pc.remove_position, pc.metric, device=device)
        out.append(_Probed(step, info["epoch"], probe(model, tree, device=device, lstm_state=pc.lstm_state), model))
    return out, task


def verdicts(checkpoints: Sequence[dict], tolerance: float = 0.0) -> dict:
    """Across checkpoints: when the ε-free machine equals the truth, when it matches the network.

    Uses each checkpoint's ``robust`` entry (see :func:`track`). The dict returned holds:

    - ``first_equivalent_step`` / ``last_equivalent_step`` / ``n_equivalent``: checkpoints whose
      machine is equivalent to the task's ground truth;
    - ``first_faithful_step`` / ``last_faithful_step`` / ``n_faithful``: checkpoints whose machine
      disagrees with the network on at most ``tolerance`` of the checked positions (strings of
      ``extract.check_length`` and all their prefixes);
    - ``best_step``: the checkpoint that ranks first by (machine equivalent to the truth,
      agreement with the network, the network's accuracy at its longest evaluated length, fewer
      states, later step), with ``best_reason`` in words.

    Returns
    -------
    dict
        The keys above; empty when no checkpoint has a ``robust`` entry.
    """
    rob = [(c["step"], c["robust"]) for c in checkpoints if c.get("robust")]
    if not rob:
        return {}
    eq = [s for s, r in rob if r.get("equivalent_to_truth")]
    faithful = [s for s, r in rob if r["agreement"] >= 1.0 - tolerance]

    def longest_acc(c):
        acc = c.get("acc_by_length") or {}
        return acc[max(acc, key=int)] if acc else 0.0

    by_step = {c["step"]: c for c in checkpoints}
    best = max(rob, key=lambda sr: (bool(sr[1].get("equivalent_to_truth")), sr[1]["agreement"],
                                    longest_acc(by_step[sr[0]]), -sr[1]["n_states"], sr[0]))
    reason = ("its machine is equivalent to the truth" if best[1].get("equivalent_to_truth")
              else "no machine is equivalent to the truth; its machine agrees best with the network")
    return {
        "first_equivalent_step": eq[0] if eq else None,
        "last_equivalent_step": eq[-1] if eq else None,
        "n_equivalent": len(eq),
        "first_faithful_step": faithful[0] if faithful else None,
        "last_faithful_step": faithful[-1] if faithful else None,
        "n_faithful": len(faithful),
        "best_step": best[0],
        "best_reason": reason,
        "n_checkpoints": len(rob),
    }


def _robust_all(probed: list[_Probed], study, task, device: str, progress: bool, write: bool, run: RunDir, dest: RunDir,
                unsupervised_below: int, word) -> tuple[list[dict], object]:
    """The ε-free machine of every checkpoint (rnnautomata.robust), as dynamics entries, and the
    last checkpoint's machine."""
    from rnnautomata.probe import prefix_tree as _tree
    from rnnautomata.robust import RefineBudget, extract_robust, robust_depth

    cfg = study.extract
    depth = robust_depth(task.n_symbols, study.probe.depth, cfg.robust_max_nodes)
    same_tree = study.probe.mode == "enumerate" and depth == study.probe.depth
    tree = probed[0].result.tree if same_tree else _tree(task.n_symbols, depth)
    budget = RefineBudget.from_config(cfg)
    iterator = probed
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(probed, desc="robust", unit="ckpt")
    entries = []
    for p in iterator:
        r = extract_robust(p.model, tree, task.alphabet, task.outputs, unsupervised_below,
                           probe_result=p.result if same_tree else None, budget=budget,
                           rng=np.random.default_rng((study.seed, 5_000_011, p.step)), device=device,
                           lstm_state=study.probe.lstm_state)
        same, cex = r.machine.equivalent(task.machine)
        entry = {
            "n_states": int(r.machine.n_states), "n_clusters": int(r.n_clusters), "finite": bool(r.finite),
            "agreement": float(r.agreement), "witness": word(r.witness), "rounds": int(r.rounds),
            "threshold": float(r.threshold), "depth": int(depth),
            "equivalent_to_truth": bool(same), "counterexample": word(cex),
            "congruence": float(congruence(r.probe_result.tree, r.extraction.labels).fraction),
        }
        entries.append(entry)
        if write:
            meta = dict(r.machine.meta)
            meta.update(step=p.step, epoch=p.epoch, depth=depth, tolerance=cfg.tolerance,
                        checkpoint_sha256=file_digest(run.checkpoint_path(p.step)))
            path = dest.robust_automaton_path(p.step)
            path.parent.mkdir(parents=True, exist_ok=True)
            r.machine.replace(meta=meta).save(path)
    return entries, r.machine


def unsupervised_length(study) -> int:
    """Prefixes shorter than this were never supervised: with ``task.target = "last"`` the
    network's output is trained only after whole strings of length ``train_min_length`` or more
    (so with the default of 1, never on the empty prefix); with ``"all"`` every prefix is."""
    return study.task.train_min_length if study.task.target == "last" else 0


def track(
    run_dir: str | Path,
    merger: str | None = None,
    epsilon_scale: float | None = None,
    epsilon: float | None = None,
    device: str = "cpu",
    progress: bool = True,
    write: bool = True,
    nerode: bool | None = None,
    robust: bool | None = None,
    out_dir: str | Path | None = None,
) -> dict:
    """Extract a machine at every checkpoint of a run and summarise the merge dynamics.

    Writes ``automata/step_XXXXXX.json`` for every checkpoint and ``dynamics.json`` (format in
    docs/formats.md) unless ``write`` is False. Merger settings default to the study's
    ``[extract]`` section. With ``nerode`` (default: ``extract.nerode``) every checkpoint also gets
    the merge condition measured against the task's Nerode classes (:func:`rnnautomata.nerode.measure`).
    With ``robust`` (default: ``extract.robust``) every checkpoint also gets its ε-free machine
    (:func:`rnnautomata.robust.extract_robust`, written to ``automata/robust/``) beside the ε
    rule's counts, the run gets ``verdicts`` across checkpoints, and the final verdict
    (``final.equivalent_to_truth``, fidelity) is the ε-free machine's; the ε rule's own final
    verdict stays in ``final.epsilon_rule``. With ``out_dir``, dynamics.json and automata/ go there
    instead (the run folder is only read: re-extract with other settings without overwriting).

    Returns
    -------
    The dynamics dict.

    Raises
    ------
    CheckpointError if the folder is not a run, or another ``track`` is writing into it.
    """
    args = dict(merger=merger, epsilon_scale=epsilon_scale, epsilon=epsilon, device=device, progress=progress,
                write=write, nerode=nerode, robust=robust)
    if not write:
        return _track(run_dir, **args)
    run = RunDir(Path(run_dir))
    run.read_manifest()  # a missing or foreign folder says so before anything is created in it
    if out_dir is not None:
        dest = Path(out_dir)
        if dest.resolve() == run.root.resolve():
            out_dir = None
        elif dest.exists() and any(p.name not in ("dynamics.json", "automata") and not p.name.startswith(".")
                                   for p in dest.iterdir()):
            raise CheckpointError(f"{dest} holds other files; track --out writes dynamics.json and automata/ into a "
                                  f"new folder (or one it wrote before)")
    with RunDir(Path(out_dir) if out_dir is not None else run.root).locked("track"):
        return _track(run_dir, **args, out_dir=out_dir)


def remove_stale_automata(run: RunDir, steps: Sequence[int]) -> list[Path]:
    """Delete stored machines (automata/ and automata/robust/) of steps that are no longer
    checkpoints of the run, so nothing serves a machine of a checkpoint that is gone."""
    import re

    keep, removed = set(steps), []
    for folder in (run.automata_dir, run.automata_dir / "robust"):
        for path in folder.glob("step_*.json") if folder.is_dir() else ():
            m = re.fullmatch(r"step_(\d+)\.json", path.name)
            if m and int(m.group(1)) not in keep:
                path.unlink()
                removed.append(path)
    return removed


def stored_machine_is_current(run: RunDir, path: Path, step: int, epsilon: float | None = None) -> bool:
    """Whether the stored machine at ``path`` was extracted from the checkpoint now at ``step`` (its
    sha256) and, for the ε rule, under ``epsilon`` (the run's dynamics.json ε)."""
    from rnnautomata.automata import Machine

    meta = Machine.load(path).meta
    if meta.get("checkpoint_sha256") != file_digest(run.checkpoint_path(step)):
        return False
    return epsilon is None or meta.get("epsilon") == epsilon


def _track(run_dir, merger, epsilon_scale, epsilon, device, progress, write, nerode, robust, out_dir=None) -> dict:
    run = RunDir(Path(run_dir))
    dest = run if out_dir is None else RunDir(Path(out_dir))
    manifest = run.read_manifest()
    if manifest.get("kind", "automata") != "automata":
        raise CheckpointError(f"{run.root} is a {manifest.get('kind')!r} run; `track` on it is handled by its own module")
    study = study_from_dict(read_toml(run.study_path))
    steps = run.steps()
    if not steps:
        raise CheckpointError(f"{run.root} has no checkpoints; run `rnnautomata run` first")
    if write:
        remove_stale_automata(dest, steps)
    merger_name = merger or study.extract.merger
    probed, task = _probe_all(run, steps, study, device, progress)

    if epsilon is None and study.extract.epsilon is not None and epsilon_scale is None:
        epsilon = study.extract.epsilon
    if epsilon is None:
        scale = epsilon_scale if epsilon_scale is not None else study.extract.epsilon_scale
        epsilon = float(epsilon_from_states([p.result.states for p in probed], scale=scale))

    metrics = {r["step"]: r for r in run.read_metrics()}
    with_nerode = study.extract.nerode if nerode is None else nerode
    if with_nerode:
        from rnnautomata.nerode import measure as nerode_measure
    checkpoints = []
    prev_labels, prev_n = None, 0
    iterator = probed
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(probed, desc="extract", unit="ckpt")
    unsupervised_below = unsupervised_length(study)
    for p in iterator:
        labels = merger_for(merger_name, study.extract, epsilon, study.seed).fit(p.result.states).labels_
        ext = extract_machine(p.result, labels, task.alphabet, task.outputs, unsupervised_below)
        minimal = ext.machine.minimize()
        m = metrics.get(p.step, {})
        acc = {k.split("len", 1)[1]: v for k, v in m.items() if k.startswith("eval/acc_len")}
        entry = {
            "step": p.step,
            "epoch": p.epoch,
            "n_states": int(ext.n_states),
            "n_states_min": int(minimal.n_states),
            "finite": bool(ext.finite),
            "congruence": float(congruence(p.result.tree, ext.labels).fraction),
            "train_loss": m.get("train/loss"),
            "val_loss": m.get("val/loss"),
            "acc_by_length": acc,
            "successor": None,
            "merged": [],
        }
        if with_nerode:
            entry["nerode"] = nerode_measure(
                task.machine, p.result, labels, epsilon=epsilon if uses_epsilon(merger_name) else None,
                max_pairs=20_000, rng=np.random.default_rng((study.seed, p.step)),
            )
        if prev_labels is not None:
            succ = successor_map(prev_labels, ext.labels, prev_n)
            entry["successor"] = succ
            entry["merged"] = merge_events(succ)
        if write:
            meta = dict(ext.machine.meta)
            meta.update(step=p.step, epoch=p.epoch, n_states=entry["n_states"], n_states_min=entry["n_states_min"],
                        finite=entry["finite"], merger=merger_name, epsilon=epsilon,
                        checkpoint_sha256=file_digest(run.checkpoint_path(p.step)))
            dest.automata_dir.mkdir(parents=True, exist_ok=True)
            ext.machine.replace(meta=meta).save(dest.automaton_path(p.step))
        checkpoints.append(entry)
        prev_labels, prev_n = ext.labels, ext.n_states

    def word(w):
        return None if w is None else "".join(task.alphabet[s] for s in w)

    with_robust = study.extract.robust if robust is None else robust
    if with_robust:
        entries, last_robust = _robust_all(probed, study, task, device, progress, write, run, dest, unsupervised_below, word)
        for c, r in zip(checkpoints, entries):
            c["robust"] = r
    steps_l = [c["step"] for c in checkpoints]
    fin = [c["finite"] for c in checkpoints]
    eps_same, eps_witness = minimal.equivalent(task.machine)
    last_min = last_robust if with_robust else minimal
    same, witness = last_min.equivalent(task.machine)
    model = probed[-1].model
    fid = fidelity(last_min, model, lengths=tuple(study.task.test_lengths[:2]), n_strings=8, truth=task.machine,
                   rng=np.random.default_rng((study.seed, 4_000_037)), device=device)
    dyn = {
        "format": DYNAMICS_FORMAT,
        "task": study.task.name,
        "merger": merger_name,
        "epsilon": epsilon,
        "depth": study.probe.depth,
        "n_prefixes": int(len(probed[0].result.states)),
        "checkpoints": checkpoints,
        "phases": phases(steps_l, [c["n_states"] for c in checkpoints], fin),
        "finite_from_step": finite_from(steps_l, fin),
        "peak_states": max(c["n_states"] for c in checkpoints),
        "final": {
            "step": steps_l[-1],
            "n_states": checkpoints[-1]["n_states"],
            "n_states_min": checkpoints[-1]["n_states_min"],
            "finite": fin[-1],
            "truth_states": int(task.machine.n_states),
            "machine": "robust" if with_robust else "epsilon",
            "equivalent_to_truth": bool(same),
            "counterexample": word(witness),
            "epsilon_rule": {"n_states_min": int(minimal.n_states), "equivalent_to_truth": bool(eps_same),
                             "counterexample": word(eps_witness)},
            "fidelity": {
                "brute_force_depth": fid.brute_force_depth,
                "network_agreement": {str(k): v for k, v in fid.network_agreement.items()},
                "network_witness": word(fid.network_witness),
                "truth_agreement": {str(k): v for k, v in (fid.truth_agreement or {}).items()},
                "truth_witness": word(fid.truth_witness),
            },
        },
    }
    if with_robust:
        last_rob = checkpoints[-1]["robust"]
        dyn["final"]["robust"] = {k: last_rob[k] for k in ("n_states", "n_clusters", "finite", "agreement", "rounds")}
        dyn["verdicts"] = verdicts(checkpoints, study.extract.tolerance)
    if write:
        atomic_write_json(dest.dynamics_path, dyn)
    return dyn


def read_dynamics(run_dir: str | Path) -> dict:
    """Read a run's dynamics.json, checking its format tag."""
    import json

    path = RunDir(Path(run_dir)).dynamics_path
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; run `rnnautomata track {Path(run_dir)}` first")
    try:
        dyn = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise CheckpointError(f"{path} is not valid JSON; rerun `rnnautomata track`") from None
    if not isinstance(dyn, dict) or dyn.get("format") != DYNAMICS_FORMAT:
        found = dyn.get("format") if isinstance(dyn, dict) else None
        raise CheckpointError(f"{path} has format {found!r}, expected {DYNAMICS_FORMAT!r}; rerun `rnnautomata track`")
    return dyn


def nerode_over_run(
    run_dir: str | Path,
    merger: str | None = None,
    epsilon_scale: float | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> dict:
    """Merge precision, recall and distances at every checkpoint of a run.

    Runs :func:`track` with ``nerode=True`` (same probes, same ε, same merger; nothing is written)
    and collects the measures of :func:`rnnautomata.nerode.measure`.

    Returns
    -------
    dict ``{"format": "rnnautomata.nerode/1", "task", "merger", "epsilon", "n_prefixes",
    "checkpoints": [{"step", "epoch", **measure(...)}, ...]}``.
    """
    dyn = track(run_dir, merger=merger, epsilon_scale=epsilon_scale, device=device, progress=progress,
                write=False, nerode=True)
    return {
        "format": "rnnautomata.nerode/1",
        "task": dyn["task"],
        "merger": dyn["merger"],
        "epsilon": dyn["epsilon"],
        "n_prefixes": dyn["n_prefixes"],
        "checkpoints": [{"step": c["step"], "epoch": c["epoch"], **c["nerode"]} for c in dyn["checkpoints"]],
    }
