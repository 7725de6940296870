"""Engines: where independent jobs (one seed's tracking, one sweep run) execute.

One parallel mechanism for the whole package: :func:`rnnautomata.aggregate.aggregate_seeds`
tracks many seeds (``rnnautomata run | track`` of a many-seed folder) and
:func:`rnnautomata.sweep.run_sweep` trains many runs (``rnnautomata sweep``) through the same
:class:`Engine` (:func:`make_engine` builds it from the same four flags on the three commands),
whose one method :meth:`Engine.map` calls a module-level function on each item and yields
``(index, result, error)`` as the jobs finish::

    engine = LocalEngine(jobs=2)
    for k, result, error in engine.map(track_quietly, ["runs/a", "runs/b"]):
        ...   # error is the worker's exception (re-raise it, or record it)

- :class:`LocalEngine` (``--engine local``, the default): ``jobs`` worker processes on this
  machine (spawned, one torch thread each); ``jobs = 1`` calls the function in this process.
- :class:`RayEngine` (``--engine ray``, extra ``rnnautomata[ray]``): one plain Ray task per item
  with ``num_cpus`` and ``num_gpus`` resources; joins the cluster at ``address``, or starts a local
  Ray and shuts it down afterwards (a Ray already started in this process is used and left up).

``with engine:`` connects first (a Ray cluster that does not answer fails there, before the caller
writes anything); :meth:`Engine.map` outside it connects for that one call.

Ctrl-C (KeyboardInterrupt) stops an engine cleanly: jobs not started are cancelled, running
worker processes (or Ray tasks) are stopped, and the interrupt is re-raised for the caller.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from rnnautomata.errors import ConfigError

__all__ = ["Engine", "LocalEngine", "RayEngine", "make_engine", "no_jobs_to_spread", "ENGINES", "RAY_EXTRA"]

ENGINES = ("local", "ray")
RAY_EXTRA = "pip install 'rnnautomata[ray]'"


def _with_one_thread(fn: Callable, item: Any) -> Any:
    """fn(item) in a worker: one torch thread, since the workers share the cores."""
    import torch

    torch.set_num_threads(1)
    return fn(item)


class Engine:
    """Runs ``fn(item)`` for many items; :meth:`map` yields ``(index, result, error)`` as each ends."""

    name = "engine"

    def __enter__(self) -> "Engine":
        """Connect before any work is written (Ray: join or start the cluster); a no-op locally."""
        return self

    def __exit__(self, *exc) -> None:
        return None

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any, BaseException | None]]:
        raise NotImplementedError


class LocalEngine(Engine):
    """``jobs`` processes on this machine (default: the number of CPUs); 1 = in this process.

    Examples
    --------
    >>> [r for _, r, _ in LocalEngine(jobs=1).map(abs, [-1, 2])]
    [1, 2]
    """

    name = "local"

    def __init__(self, jobs: int | None = None) -> None:
        self.jobs = jobs  # worker processes; None = os.cpu_count()

    def map(self, fn, items):
        jobs = max(1, min(self.jobs or os.cpu_count() or 1, len(items)))
        if jobs == 1:
            for k, item in enumerate(items):
                try:
                    result, error = fn(item), None
                except Exception as err:  # noqa: BLE001 - handed to the caller, like a worker's
                    result, error = None, err
                yield k, result, error
            return
        # spawn, not fork: a forked child of a process that has used torch's thread pool can hang
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))
        try:
            futures = {pool.submit(_with_one_thread, fn, item): k for k, item in enumerate(items)}
            for future in as_completed(futures):
                error = future.exception()
                yield futures[future], None if error is not None else future.result(), error
        except BaseException:  # Ctrl-C, or the caller stopped early: stop the workers too
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()  # every write of a run is atomic: a stopped worker leaves no half file
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


class RayEngine(Engine):
    """One plain Ray task per item, each with ``num_cpus`` CPUs and ``num_gpus`` (fractional) GPUs.

    Parameters
    ----------
    address : a running cluster (``ray://host:10001`` or ``host:6379``); None starts a local Ray
        with ``jobs`` CPUs (default: all) and shuts it down when :meth:`map` ends.
    jobs : CPUs of the local Ray (ignored with ``address``).
    num_cpus, num_gpus : each task's resources; a fractional ``num_gpus`` (0.25: four runs a GPU)
        also caps the task's share of GPU memory (torch.cuda.set_per_process_memory_fraction).

    Raises
    ------
    ConfigError (on construction) if Ray is not installed.
    """

    name = "ray"

    def __init__(self, address: str | None = None, jobs: int | None = None, num_cpus: float = 1, num_gpus: float = 0) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ConfigError(f"--engine ray needs Ray, which is not installed: {RAY_EXTRA}") from None
        self.address, self.jobs, self.num_cpus, self.num_gpus = address, jobs, num_cpus, num_gpus

    def __enter__(self) -> "RayEngine":
        self._started = self._start()
        return self

    def __exit__(self, *exc) -> None:
        import ray

        if getattr(self, "_started", False):
            ray.shutdown()
            self._started = False

    def _start(self) -> bool:
        """Connect (or start a local Ray); True if this call started it and must shut it down."""
        import ray

        if ray.is_initialized():
            return False
        # the workers import this very package (a source checkout too, not only an installed copy)
        package_root = str(Path(__file__).resolve().parents[1])
        path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
        if self.address:
            _check_answers(self.address)
        try:
            if self.address:
                ray.init(address=self.address, log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": path}})
            else:
                ray.init(num_cpus=self.jobs or os.cpu_count(), include_dashboard=False, log_to_driver=False,
                         runtime_env={"env_vars": {"PYTHONPATH": path}})
        except ConnectionError as err:
            raise ConfigError(f"--address {self.address}: no Ray cluster answers there ({str(err).splitlines()[0]})") from None
        except Exception as err:  # noqa: BLE001 - Ray raises several kinds for a bad or dead address
            where = f"--address {self.address}" if self.address else "a local Ray"
            raise ConfigError(f"{where} could not be started or joined: {str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
        return True

    def map(self, fn, items):
        import ray

        if not ray.is_initialized():  # not inside `with engine:`: connect for this call only
            with self:
                yield from self.map(fn, items)
            return
        task = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=0)(_ray_call)
        refs: dict = {}
        try:
            refs = {task.remote(fn, item, self.num_gpus): k for k, item in enumerate(items)}
            while refs:
                (ref,), _ = ray.wait(list(refs), num_returns=1)
                k = refs.pop(ref)
                try:
                    yield k, ray.get(ref), None
                except ray.exceptions.RayTaskError as err:
                    cause = getattr(err, "cause", None)
                    yield k, None, cause if isinstance(cause, BaseException) else RuntimeError(str(err).splitlines()[-1])
        except BaseException:
            for ref in refs:
                ray.cancel(ref, force=True)
            raise


def _check_answers(address: str, timeout: float = 5.0) -> None:
    """A one-line ConfigError at once if nothing listens at ``host:port`` (Ray itself retries for minutes)."""
    import socket

    if address == "auto":
        return
    where = address.split("://", 1)[-1].rsplit("/", 1)[0]
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address!r} must look like host:6379 or ray://host:10001")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise ConfigError(f"--address {address}: no Ray cluster answers there ({err.strerror or err}); "
                          "start one with `ray start --head` or leave out --address for a local Ray") from None


def _ray_call(fn: Callable, item: Any, num_gpus: float) -> Any:
    """fn(item) in a Ray worker: one torch thread a CPU, and a fractional GPU's share of memory."""
    import torch

    torch.set_num_threads(1)
    if 0 < num_gpus < 1 and torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(num_gpus)
    return fn(item)


def make_engine(name: str = "local", jobs: int | None = None, address: str | None = None, gpus_per_run: float = 0) -> Engine:
    """The engine named ``name`` ("local" or "ray"), checked before any work starts.

    Raises
    ------
    ConfigError for an unknown name, an ``address`` or ``gpus_per_run`` without ``ray``, or Ray
    not installed.
    """
    if name not in ENGINES:
        raise ConfigError(f"--engine {name!r} is not known; choose one of: {', '.join(ENGINES)}")
    if gpus_per_run < 0:
        raise ConfigError(f"--gpus-per-run must be 0 or more (got {gpus_per_run})")
    if name == "local":
        if address is not None:
            raise ConfigError("--address joins a Ray cluster; add --engine ray")
        if gpus_per_run:
            raise ConfigError("--gpus-per-run shares GPUs between Ray tasks; add --engine ray")
        return LocalEngine(jobs)
    return RayEngine(address=address, jobs=jobs, num_gpus=gpus_per_run)


def no_jobs_to_spread(what: str) -> ConfigError:
    """The one-line error for ``--engine ray`` given to a command whose ``what`` (a study, a run
    folder) dispatches no per-seed jobs: nothing would go to Ray, so it is refused, not ignored.

    Examples
    --------
    >>> str(no_jobs_to_spread("runs/x (one 'automata' run)")).startswith("--engine ray spreads")
    True
    """
    return ConfigError(f"--engine ray spreads the seeds of a many-seed folder (a study with seeds = [...]) "
                       f"as jobs, and {what} has none; drop --engine ray, or spread a grid's runs with "
                       "`rnnautomata sweep --engine ray`")
