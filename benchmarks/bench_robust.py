"""Extraction on machines nobody tuned against: the ε-free extractor vs the seed's ε rule vs L*.

The benchmark of issue 10. Seeded random minimal machines (DFAs and Moore machines, 3-8 states,
2-3 symbols, 2-3 outputs; machine seeds 0.. by default, none of which was looked at while the
extractor was written: development used seeds 1000+) x Elman, GRU and LSTM x training seeds,
each trained with one fixed recipe: tasks/tomita1.toml with only the task swapped (and, for
3-symbol alphabets, 1,024 sampled strings per length instead of all 88,572 strings up to length
10, to fit the 2-core budget). No per-task tuning.

Per (machine, network) pair on the final checkpoint:
- the network's accuracy at lengths 100 and 1,000 (every position of 32 random strings);
- the robust machine (`extract_robust`, the default of `extract`/`track`): equivalent to the truth,
  or its shortest counterexample and whether the network itself is right on it; its agreement with
  the network on every prefix of 256 fresh random strings of length 50; seconds;
- the same for the seed's ε rule (leader, ε = 0.3 x the spread of the final states);
- AALpy L* on the same network through `rnnautomata.lstar.learn_machine` with its defaults (state-prefix
  oracle, 200 walks of length 20 per state, <= 20 rounds, 60 s budget): states, agreement, seconds.

Goal: >= 95 % of pairs whose network is >= 99.9 % right at length 1,000 extract to a machine
equivalent to the truth; where the network is wrong, the machine agrees with the network on
>= 99 % of positions; per-checkpoint extraction >= 100x faster than L*.

    python benchmarks/bench_robust.py                      # 30 machines x 3 archs x 2 seeds
    python benchmarks/bench_robust.py --machines 4 --archs gru --seeds 0 --no-lstar   # quick look

Trained runs are cached under --work (default runs/bench_robust) and reused.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnnautomata.automata import Machine  # noqa: E402
from rnnautomata.config import apply_overrides, read_toml, study_from_dict  # noqa: E402
from rnnautomata.data.regular import random_machine  # noqa: E402
from rnnautomata.extract import extract_machine, network_accuracy  # noqa: E402
from rnnautomata.merge import epsilon_from_states, make_merger  # noqa: E402
from rnnautomata.probe import prefix_tree, probe  # noqa: E402
from rnnautomata.robust import agreement_with_network, extract_robust, robust_depth  # noqa: E402
from rnnautomata.train import load_model, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def machine_spec(index: int) -> tuple[int, int, int]:
    """(states, symbols, outputs) of benchmark machine `index`: states 3-8, symbols 2-3, outputs 2-3."""
    rng = np.random.default_rng((index, 77))
    n_states = int(rng.integers(3, 9))
    n_symbols = int(rng.integers(2, 4))
    n_outputs = min(int(rng.integers(2, 4)), n_states)
    return n_states, n_symbols, n_outputs


#: training recipes: overrides of tasks/tomita1.toml. "zoo" is the zoo's fixed 25 epochs; "patience" is
#: the recipe docs/guide.md recommends for a new task: a budget of 200 epochs, stopped once validation
#: accuracy at length 50 (5x the training length) has not improved, or has been 100 %, for 4
#: checkpoints (20 epochs).
RECIPES = {"zoo": [], "patience": ["train.epochs=200", "train.patience=4"]}


def train_pair(work: Path, index: int, arch: str, seed: int, epochs: int | None = None,
               recipe: str = "patience") -> tuple[Path, Machine]:
    n, k, o = machine_spec(index)
    truth = random_machine(n, k, o, np.random.default_rng(index))
    mpath = work / f"m{index:03d}.json"
    if not mpath.is_file():
        truth.save(mpath)
    out = work / f"m{index:03d}_{arch}_s{seed}"
    manifest = out / "manifest.json"
    if manifest.is_file() and json.loads(manifest.read_text()).get("status") == "complete":
        return out, truth
    overrides = ['task.name="machine"', f'task.path="{mpath.resolve()}"', f'model.arch="{arch}"', f"seed={seed}",
                 f'name="m{index:03d}_{arch}_s{seed}"']
    if k > 2:
        overrides += ['task.train_set="sample"', "task.train_samples=1024"]
    overrides += RECIPES[recipe]
    if epochs is not None:
        overrides += [f"train.epochs={epochs}"]
    study = study_from_dict(apply_overrides(read_toml(ROOT / "tasks" / "tomita1.toml"), overrides))
    train(study, out, progress=False)
    return out, truth


def word(w) -> str | None:
    return None if w is None else "".join(str(s) for s in w)


def lstar_on(model, truth: Machine) -> dict:
    """AALpy L* through the package with its defaults (state-prefix oracle, 20 rounds, 60 s budget)."""
    try:
        from rnnautomata.lstar import learn_machine
    except ImportError:  # pragma: no cover
        return {}
    res = learn_machine(model, truth.alphabet, truth.outputs)
    agree, _ = agreement_with_network(res.machine, model, rng=np.random.default_rng(2))
    return {"states": int(res.machine.n_states), "equivalent": bool(res.machine.equivalent(truth)[0]),
            "agreement": agree, "seconds": res.seconds, "rounds_exhausted": res.rounds_exhausted,
            "budget_exhausted": res.budget_exhausted}


def evaluate(run: Path, truth: Machine, with_lstar: bool) -> dict:
    model, _ = load_model(run, "last")
    rng = np.random.default_rng(0)
    acc = {L: network_accuracy(model, truth, L, 32, rng).per_position for L in (100, 1000)}
    depth = robust_depth(truth.n_symbols, 10)
    tree = prefix_tree(truth.n_symbols, depth)
    t = time.perf_counter()
    pr = probe(model, tree)
    rob = extract_robust(model, tree, truth.alphabet, truth.outputs, probe_result=pr,
                         rng=np.random.default_rng(1))
    rob_s = time.perf_counter() - t
    same, cex = rob.machine.equivalent(truth)
    net_on_cex = None
    if cex is not None and len(cex):
        from rnnautomata.robust import _outputs

        net_on_cex = bool(_outputs(model, np.array([cex]), "cpu")[0, -1] == truth.output_of(cex))
    agree, _ = agreement_with_network(rob.machine, model, rng=np.random.default_rng(2))
    # the seed's ε rule on the same (final) checkpoint: leader, ε = 0.3 x the spread of its states
    t = time.perf_counter()
    full = probe(model, prefix_tree(truth.n_symbols, 10)) if depth < 10 else pr
    eps = epsilon_from_states(full.states, 0.3)
    eps_machine = extract_machine(full, make_merger("leader", epsilon=eps).fit(full.states).labels_,
                                  truth.alphabet, truth.outputs).machine.minimize()
    eps_s = time.perf_counter() - t
    eps_same, eps_cex = eps_machine.equivalent(truth)
    eps_agree, _ = agreement_with_network(eps_machine, model, rng=np.random.default_rng(2))
    row = {
        "run": run.name, "truth_states": truth.n_states, "n_symbols": truth.n_symbols,
        "n_outputs": len(truth.outputs), "acc100": acc[100], "acc1000": acc[1000],
        "robust": {"states": rob.machine.n_states, "equivalent": bool(same), "counterexample": word(cex),
                   "network_right_on_cex": net_on_cex, "agreement": agree, "rounds": rob.rounds,
                   "finite": rob.finite, "seconds": rob_s},
        "epsilon_rule": {"states": eps_machine.n_states, "equivalent": bool(eps_same),
                         "counterexample": word(eps_cex), "agreement": eps_agree, "seconds": eps_s},
    }
    if with_lstar:
        row["lstar"] = lstar_on(model, truth)
    return row


def summarise(rows: list[dict]) -> dict:
    right = [r for r in rows if r["acc1000"] >= 0.999]
    wrong = [r for r in rows if r["acc1000"] < 0.999]

    def frac(xs, f):
        return (sum(1 for x in xs if f(x)), len(xs))

    out = {
        "pairs": len(rows),
        "network_right": len(right),
        "robust_equivalent_when_right": frac(right, lambda r: r["robust"]["equivalent"]),
        "epsilon_equivalent_when_right": frac(right, lambda r: r["epsilon_rule"]["equivalent"]),
        "robust_agreement_ge_0.99_when_wrong": frac(wrong, lambda r: r["robust"]["agreement"] >= 0.99),
        "epsilon_agreement_ge_0.99_when_wrong": frac(wrong, lambda r: r["epsilon_rule"]["agreement"] >= 0.99),
        "robust_seconds_median": float(np.median([r["robust"]["seconds"] for r in rows])) if rows else None,
    }
    ls = [r for r in rows if r.get("lstar")]
    if ls:
        ratios = [r["lstar"]["seconds"] / r["robust"]["seconds"] for r in ls]
        out["lstar_seconds_median"] = float(np.median([r["lstar"]["seconds"] for r in ls]))
        out["lstar_over_robust_time_median"] = float(np.median(ratios))
        out["lstar_over_robust_time_min"] = float(np.min(ratios))
        out["lstar_equivalent_when_right"] = frac([r for r in ls if r["acc1000"] >= 0.999],
                                                  lambda r: r["lstar"]["equivalent"])
    return out


def markdown(rows: list[dict], title: str) -> str:
    """Every pair as one table row (docs/bench-robust-pairs.md)."""
    def eq(part):
        if part.get("equivalent"):
            return "**yes**"
        cex = part.get("counterexample")
        return "no" + ("" if cex is None else f" (`{cex or 'ε'}`)")

    lines = [f"## {title}", "",
             "| pair | truth | acc 100 | acc 1,000 | ε-free states | ≡ truth (shortest cex) | network right on cex "
             "| agreement | s | ε rule states | ≡ truth | agreement | L* states | L* ≡ | L* agreement | L* s |",
             "|---|---:|---:|---:|---:|---|---|---:|---:|---:|---|---:|---:|---|---:|---:|"]
    for r in rows:
        rob, eps, ls = r["robust"], r["epsilon_rule"], r.get("lstar") or {}
        net = {True: "yes", False: "**no**", None: "–"}[rob["network_right_on_cex"]]
        lcells = ([str(ls["states"]), "yes" if ls["equivalent"] else "no", f"{ls['agreement']:.4f}", f"{ls['seconds']:.1f}"]
                  if ls else ["–"] * 4)
        lines.append(f"| {r['run']} | {r['truth_states']} | {r['acc100']:.4f} | {r['acc1000']:.4f} | {rob['states']} | "
                     f"{eq(rob)} | {net} | {rob['agreement']:.4f} | {rob['seconds']:.2f} | {eps['states']} | {eq(eps)} | "
                     f"{eps['agreement']:.4f} | " + " | ".join(lcells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--machines", type=int, default=30, help="machines 0 .. N-1 (or --first)")
    p.add_argument("--first", type=int, default=0, help="first machine seed")
    p.add_argument("--archs", default="elman,gru,lstm")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs (smoke tests only)")
    p.add_argument("--recipe", default="patience", choices=sorted(RECIPES), help="training recipe (see RECIPES)")
    p.add_argument("--work", default=None, help="where trained runs are cached (default runs/bench_robust/<recipe>)")
    p.add_argument("--no-lstar", action="store_true")
    p.add_argument("--train-only", action="store_true")
    p.add_argument("--json", default=None, help="write every row and the summary here")
    p.add_argument("--markdown", default=None, metavar="FILE", help="also write every pair as a markdown table")
    p.add_argument("--title", default="Every pair", help="the markdown table's heading")
    p.add_argument("--combine", nargs="+", default=None, metavar="JSON",
                   help="only print the summary of the rows of these --json files (parts run in parallel)")
    args = p.parse_args(argv)
    if args.combine:
        return report(args, [r for f in args.combine for r in json.loads(Path(f).read_text())["rows"]])
    torch.set_num_threads(1)
    work = Path(args.work) if args.work else ROOT / "runs" / "bench_robust" / args.recipe
    work.mkdir(parents=True, exist_ok=True)
    archs = args.archs.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for index in range(args.first, args.first + args.machines):
        for arch in archs:
            for seed in seeds:
                t = time.perf_counter()
                run, truth = train_pair(work, index, arch, seed, args.epochs, args.recipe)
                train_s = time.perf_counter() - t
                if args.train_only:
                    print(f"{run.name}: trained in {train_s:.1f} s", flush=True)
                    continue
                row = evaluate(run, truth, not args.no_lstar)
                rows.append(row)
                r, e = row["robust"], row["epsilon_rule"]
                ls = row.get("lstar") or {}
                print(f"{row['run']:18s} truth {row['truth_states']} acc100 {row['acc100']:.4f} acc1000 {row['acc1000']:.4f} | "
                      f"robust {r['states']:3d} eq {r['equivalent']!s:5} agree {r['agreement']:.4f} {r['seconds']:.2f}s "
                      f"cex {r['counterexample'] or '-'} net-right-on-cex {r['network_right_on_cex']} | "
                      f"eps {e['states']:3d} eq {e['equivalent']!s:5} agree {e['agreement']:.4f} | "
                      f"L* {ls.get('states', '-')} eq {ls.get('equivalent', '-')} {ls.get('seconds', float('nan')):.2f}s", flush=True)
    return 0 if args.train_only else report(args, rows)


def report(args, rows: list[dict]) -> int:
    """Print the summary; write --json and --markdown."""
    summary = summarise(rows)
    print(json.dumps(summary, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    if args.markdown:
        Path(args.markdown).write_text(markdown(rows, args.title))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
