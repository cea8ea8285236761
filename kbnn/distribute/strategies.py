"""`tf.distribute` strategies by name, cluster configuration and who is the chief.

kbnn does not distribute anything itself: these are thin, validated constructors for
TensorFlow's own strategies, so a recipe runs unchanged on one device, several GPUs of one
machine (`MirroredStrategy`), several machines (`MultiWorkerMirroredStrategy`, configured by the
`TF_CONFIG` environment variable) or a TPU (`TPUStrategy`).
"""

from __future__ import annotations

import json
import os

from kbnn._validation import check_int, check_positive_int, fail
from kbnn.errors import KbnnError, UsageError

import tensorflow as tf

__all__ = [
    "COMMUNICATION_CHOICES",
    "STRATEGY_CHOICES",
    "DeviceNotFoundError",
    "get_strategy",
    "global_batch_size",
    "is_chief",
    "split_cpu",
    "tf_config",
    "worker_index",
]

STRATEGY_CHOICES = ("default", "mirrored", "multiworker", "tpu")
COMMUNICATION_CHOICES = ("auto", "ring", "nccl")

# One MirroredStrategy per device set and process. A second MirroredStrategy over the same
# devices restarts the collective instance keys at the same values, and TensorFlow's collective
# executor keeps the parameters (tensor shapes) it resolved for a key: the new strategy's first
# all-reduce of a different size then fails with "Shape mismatch in the collective instance N"
# (e.g. Bop's all-reduce of the binary kernels after an Adam run reduced all variables).
_MIRRORED: dict[tuple[str, ...] | None, tf.distribute.MirroredStrategy] = {}


class DeviceNotFoundError(KbnnError):
    """The devices a strategy needs (a TPU, enough CPUs/GPUs) are not there."""


def split_cpu(num_devices: int) -> list[str]:
    """Split the host CPU into `num_devices` logical devices, for MirroredStrategy without GPUs.

    Must run before TensorFlow initialises its devices (before any op or `list_logical_devices`),
    i.e. first thing in a fresh process. Returns the device names, e.g. `["/cpu:0", "/cpu:1"]`.
    """
    check_positive_int(num_devices, "num_devices")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
        )
    except RuntimeError as err:  # devices already initialised in this process
        existing = tf.config.list_logical_devices("CPU")
        if len(existing) == num_devices:
            return [f"/cpu:{i}" for i in range(num_devices)]
        raise UsageError(
            f"cannot split the CPU into {num_devices} devices: TensorFlow already initialised "
            f"{len(existing)} in this process; call split_cpu first thing in a new process"
        ) from err
    return [f"/cpu:{i}" for i in range(num_devices)]


def tf_config(workers: list[str], index: int, *, task_type: str = "worker") -> str:
    """The `TF_CONFIG` JSON of worker `index` in a cluster of `workers` ("host:port" each).

    Every worker runs the same command with its own `TF_CONFIG`; worker 0 is the chief (it
    writes the checkpoints and logs).
    """
    workers = list(workers)
    if not workers or not all(isinstance(w, str) and ":" in w for w in workers):
        raise fail("workers", "a non-empty list of 'host:port' strings", workers)
    check_int(index, "index", low=0, high=len(workers) - 1)
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": task_type, "index": index}})


def _check_tf_config() -> dict:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise UsageError(
            "strategy 'multiworker' needs the TF_CONFIG environment variable (the cluster's "
            "worker addresses and this worker's index, see docs/distributed_training.md); "
            "use 'mirrored' for the GPUs of one machine"
        )
    try:
        config = json.loads(raw)
        workers = config["cluster"]["worker"]
        task = config["task"]
        task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as err:
        raise UsageError(
            "TF_CONFIG must be JSON like "
            '{"cluster": {"worker": ["host0:port", "host1:port"]}, '
            f'"task": {{"type": "worker", "index": 0}}}}; got {raw!r}'
        ) from err
    if not isinstance(workers, list) or not workers:
        raise UsageError(f"TF_CONFIG cluster.worker must be a non-empty list, got {workers!r}")
    return config


def _communication(name: str):
    impl = tf.distribute.experimental.CommunicationImplementation
    table = {"auto": impl.AUTO, "ring": impl.RING, "nccl": impl.NCCL}
    if name not in table:
        raise fail("communication", f"one of {COMMUNICATION_CHOICES}", name)
    return tf.distribute.experimental.CommunicationOptions(implementation=table[name])


def _tpu_strategy(tpu: str | None):
    tpu = tpu or os.environ.get("TPU_NAME") or "local"
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError, RuntimeError) as err:
        raise DeviceNotFoundError(
            f"no TPU found for tpu={tpu!r} ({type(err).__name__}: "
            f"{str(err).split('. ')[0].splitlines()[0]}); "
            "on a Cloud TPU VM use tpu='local', else pass the TPU name or its grpc:// address"
        ) from err
    return tf.distribute.TPUStrategy(resolver)


def get_strategy(name="default", *, devices=None, tpu=None, communication="auto"):
    """A `tf.distribute.Strategy` from a name in `STRATEGY_CHOICES` (an instance is returned as is).

    - `"default"`: TensorFlow's default strategy (one device; no scope needed, same code path).
    - `"mirrored"`: `MirroredStrategy` over `devices` (default: every GPU of this machine, else
      the CPU); variables are mirrored, gradients all-reduced every step. The same instance is
      returned for the same devices (a second one in a process can fail, see `_MIRRORED`).
    - `"multiworker"`: `MultiWorkerMirroredStrategy` over the machines listed in `TF_CONFIG`
      (required), all-reduce by `communication` ("auto", "ring" or "nccl").
    - `"tpu"`: `TPUStrategy` on `tpu` (a TPU name, a grpc:// address, or `"local"` on a TPU VM;
      default `$TPU_NAME`, else `"local"`); `DeviceNotFoundError` at once when there is none.
    """
    if isinstance(name, tf.distribute.Strategy):
        return name
    key = str(name).strip().lower().replace("-", "_") if isinstance(name, str) else None
    key = {"multi_worker": "multiworker", "multiworkermirrored": "multiworker"}.get(key, key)
    if key not in STRATEGY_CHOICES:
        raise fail("strategy", f"one of {STRATEGY_CHOICES}", name)
    if key == "default":
        return tf.distribute.get_strategy()
    if key == "mirrored":
        if devices is not None:
            devices = list(devices)
            known = {d.name.lower() for d in tf.config.list_logical_devices()}
            missing = [d for d in devices if _canonical(d) not in known]
            if missing:
                raise DeviceNotFoundError(
                    f"devices {missing} not found; this process has {sorted(known)}"
                )
        key = tuple(_canonical(d) for d in devices) if devices is not None else None
        if key not in _MIRRORED:
            _MIRRORED[key] = tf.distribute.MirroredStrategy(devices=devices)
        return _MIRRORED[key]
    if key == "multiworker":
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=_communication(communication)
        )
    return _tpu_strategy(tpu)


def _canonical(device: str) -> str:
    """'/cpu:0' or 'GPU:1' → '/device:cpu:0' (lower case), as logical device names read."""
    spec = tf.DeviceSpec.from_string(device)
    return f"/device:{(spec.device_type or '').lower()}:{spec.device_index or 0}"


def global_batch_size(per_replica_batch_size: int, strategy) -> int:
    """per-replica batch × replicas in sync (over all workers)."""
    check_positive_int(per_replica_batch_size, "per_replica_batch_size")
    return per_replica_batch_size * strategy.num_replicas_in_sync


def worker_index(strategy) -> tuple[int, int]:
    """(this worker's index, number of workers); (0, 1) outside multi-worker training."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 0, 1
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec().as_dict()
    workers = len(spec.get("worker", [])) + len(spec.get("chief", []))
    if not workers:
        return 0, 1
    index = int(resolver.task_id or 0)
    if resolver.task_type == "worker" and "chief" in spec:
        index += 1
    return index, workers


def is_chief(strategy) -> bool:
    """True on the one worker that writes checkpoints, logs and curves (always outside MWMS)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    resolver = strategy.cluster_resolver
    task_type = resolver.task_type
    if task_type in (None, "chief"):
        return True
    spec = resolver.cluster_spec().as_dict()
    return task_type == "worker" and int(resolver.task_id or 0) == 0 and "chief" not in spec
