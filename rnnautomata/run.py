"""One run directory as a Python object: what the CLI shows, for a notebook or a script.

>>> from rnnautomata import Run                                  # doctest: +SKIP
>>> run = Run("runs/streaming_parity")                            # doctest: +SKIP
>>> run.steps[:3], run.step("@-1")                                # doctest: +SKIP
>>> run.machine("last")                  # the stored ε-free machine            # doctest: +SKIP
>>> run.machine(11130, method="epsilon", epsilon=0.05)   # re-extracted, nothing written   # doctest: +SKIP
>>> run.merges(9450, 21000)              # merge events between any two checkpoints        # doctest: +SKIP
>>> run.outputs(["0110", "111"], step="last")                     # doctest: +SKIP

Nothing here writes into the run folder: machines extracted with other settings are returned,
not stored (``rnnautomata track --out DIR`` writes a whole re-extraction elsewhere).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np

from rnnautomata.automata import Machine
from rnnautomata.errors import CheckpointError
from rnnautomata.runs import RunDir

__all__ = ["Run"]


class Run:
    """A finished (or running) automata run: its checkpoints, models, machines and dynamics.

    Checkpoints are named by step (an int), ``"last"``, or ``"@K"``: the K-th checkpoint (0-based,
    negative from the end), as ``--step`` on the command line.

    Parameters
    ----------
    path : str or Path
        The run directory (`rnnautomata run ... --out PATH`).
    device : str
        Where models are loaded.
    """

    def __init__(self, path: str | Path, device: str = "cpu"):
        self.dir = RunDir(Path(path))
        self.manifest = self.dir.read_manifest()
        if self.manifest.get("kind", "automata") != "automata":
            raise CheckpointError(f"{self.dir.root} is a {self.manifest.get('kind')!r} run; Run reads automata runs")
        self.device = device

    def __repr__(self) -> str:
        steps = self.steps
        return f"Run({str(self.dir.root)!r}: {len(steps)} checkpoints, steps {steps[0] if steps else '-'}..{steps[-1] if steps else '-'})"

    # --- checkpoints -----------------------------------------------------------------------
    @property
    def steps(self) -> list[int]:
        """Checkpoint steps, ascending."""
        return self.dir.steps()

    def step(self, which: int | str = "last") -> int:
        """The checkpoint step named by ``which`` (a step, ``"last"`` or ``"@K"``)."""
        return self.dir.resolve_step(which)

    @cached_property
    def study(self):
        from rnnautomata.config import read_toml, study_from_dict

        return study_from_dict(read_toml(self.dir.study_path))

    @cached_property
    def task(self):
        from rnnautomata.data import make_task

        return make_task(self.study.task)

    def model(self, which: int | str = "last"):
        """The network at a checkpoint (eval mode, on ``self.device``)."""
        from rnnautomata.train import load_model

        model, _ = load_model(self.dir.root, self.step(which), device=self.device)
        return model

    @property
    def metrics(self) -> list[dict]:
        """metrics.jsonl, one record per checkpoint."""
        return self.dir.read_metrics()

    @property
    def dynamics(self) -> dict:
        """dynamics.json (run `rnnautomata track` first)."""
        from rnnautomata.dynamics import read_dynamics

        return read_dynamics(self.dir.root)

    # --- machines --------------------------------------------------------------------------
    def machine(self, which: int | str = "last", method: str = "robust", epsilon: float | None = None,
                merger: str | None = None) -> Machine:
        """The machine extracted at a checkpoint.

        Parameters
        ----------
        method : ``"robust"`` (the ε-free machine, minimised) or ``"epsilon"`` (the ε rule's
            machine as extracted, not minimised).
        epsilon, merger : for ``"epsilon"``: other settings than the run's (ε defaults to the one in
            dynamics.json). With none given, the stored machine is returned when it is current
            (made from this very checkpoint and ε); otherwise the machine is extracted here and
            returned without being written.
        """
        from rnnautomata.dynamics import stored_machine_is_current

        step = self.step(which)
        if method not in ("robust", "epsilon"):
            raise ValueError(f"method must be 'robust' or 'epsilon', not {method!r}")
        if method == "robust":
            path = self.dir.robust_automaton_path(step)
            if path.is_file() and stored_machine_is_current(self.dir, path, step):
                return Machine.load(path)
            return self._robust(step)
        run_eps = self._run_epsilon()
        path = self.dir.automaton_path(step)
        if (epsilon is None and merger is None and run_eps is not None and path.is_file()
                and stored_machine_is_current(self.dir, path, step, run_eps)):
            return Machine.load(path)
        return self._epsilon_labels(step, run_eps if epsilon is None else epsilon, merger)[1].machine

    def _run_epsilon(self) -> float | None:
        try:
            return float(self.dynamics["epsilon"])
        except (CheckpointError, KeyError, TypeError):
            return self.study.extract.epsilon

    def _tree(self):
        from rnnautomata.probe import prefix_tree, prefix_tree_from_strings

        study, task = self.study, self.task
        if study.probe.mode == "enumerate":
            return prefix_tree(task.n_symbols, study.probe.depth)
        rng = np.random.default_rng((study.seed, 3_000_017))  # the tree track probes
        return prefix_tree_from_strings(task.sample(rng, study.probe.samples, study.probe.depth), task.n_symbols)

    def _robust(self, step: int) -> Machine:
        from rnnautomata.dynamics import unsupervised_length
        from rnnautomata.probe import prefix_tree
        from rnnautomata.robust import RefineBudget, extract_robust, robust_depth

        cfg, task = self.study.extract, self.task
        depth = robust_depth(task.n_symbols, self.study.probe.depth, cfg.robust_max_nodes)
        budget = RefineBudget.from_config(cfg)
        r = extract_robust(self.model(step), prefix_tree(task.n_symbols, depth), task.alphabet, task.outputs,
                           unsupervised_length(self.study), budget=budget, device=self.device,
                           rng=np.random.default_rng((self.study.seed, step)), lstm_state=self.study.probe.lstm_state)
        return r.machine

    def _epsilon_labels(self, step: int, epsilon: float | None, merger: str | None):
        from rnnautomata.dynamics import unsupervised_length
        from rnnautomata.extract import extract_machine
        from rnnautomata.merge import make_merger
        from rnnautomata.probe import probe

        name = merger or self.study.extract.merger
        if epsilon is None and name != "kmeans":
            raise CheckpointError(f"{self.dir.root} has no dynamics.json to take ε from; pass epsilon= or run "
                                  f"`rnnautomata track {self.dir.root}`")
        params = ({"n_clusters": self.study.extract.n_clusters, "random_state": self.study.seed} if name == "kmeans"
                  else {"epsilon": epsilon})
        pr = probe(self.model(step), self._tree(), device=self.device, lstm_state=self.study.probe.lstm_state)
        labels = make_merger(name, **params).fit(pr.states).labels_
        return labels, extract_machine(pr, labels, self.task.alphabet, self.task.outputs, unsupervised_length(self.study))

    def merges(self, a: int | str, b: int | str, epsilon: float | None = None) -> list[dict]:
        """Merge events from checkpoint ``a`` to checkpoint ``b`` (any two, not only consecutive), under
        the ε rule at the run's ε (or ``epsilon``): groups of ``a``'s states whose prefixes mostly
        land in one state of ``b``, as in dynamics.json's ``merged`` (``{"from": [...], "into": q}``)."""
        from rnnautomata.dynamics import merge_events, successor_map

        eps = self._run_epsilon() if epsilon is None else epsilon
        la, ea = self._epsilon_labels(self.step(a), eps, None)
        lb, _ = self._epsilon_labels(self.step(b), eps, None)
        return merge_events(successor_map(la, lb, ea.n_states))

    def outputs(self, strings: Sequence[str | Sequence[int]], which: int | str = "last") -> list[list[str]]:
        """The network's output label after every symbol of each string (labels or symbol ids)."""
        from rnnautomata.robust import _outputs

        alphabet = list(self.task.alphabet)
        out = []
        model = self.model(which)
        for s in strings:
            if isinstance(s, str) and any(c not in alphabet for c in s):
                raise ValueError(f"{s!r} has symbols outside the alphabet {alphabet}")
            ids = [alphabet.index(c) for c in s] if isinstance(s, str) else [int(c) for c in s]
            if not ids:
                out.append([])
                continue
            y = _outputs(model, np.array([ids]), self.device)[0]  # (T,)
            out.append([self.task.outputs[int(k)] for k in y])
        return out
