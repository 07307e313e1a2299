"""`run_train`: DCLM's open_lm recipe on one process or under torchrun.

One optimizer step = global_batch_size sequences = micro-batches x accumulation x processes. Before the step
its lr is set (open_lm's order); each micro-batch's loss is scaled by 1/accumulation so the gradient is the
global-batch mean; the gradient norm is clipped; AdamW steps. The run is a pure function of the config, the
data and the checkpoint it resumed from: on CPU in fp32 a run stopped at step k and resumed gives the same
losses, bit for bit, as the run that never stopped (tests/train/test_resume.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from dclm.errors import DclmError
from dclm.runtime.config import ConfigError
from dclm.train.config import TrainConfig, TrainResult
from dclm.train.scales import Scale, dclm_param_count, get_scale

log = logging.getLogger(__name__)

METRICS = "metrics.jsonl"


@dataclass(frozen=True)
class Plan:
    """The hyperparameters of a run: the scale with every override applied and the data's vocabulary checked."""

    scale: Scale
    model: dict  # ModelArgs fields
    total_steps: int
    stop_step: int
    global_bs: int
    micro_bs: int
    accum: int
    lr: float
    warmup: int
    wd: float
    cd: float
    z_loss: float
    checkpoint_every: int

    def digest_fields(self, cfg: TrainConfig, fingerprints: list[str]) -> dict:
        """What a resumed run must share with the run that wrote the checkpoint."""
        return {"model": self.model, "total_steps": self.total_steps, "global_bs": self.global_bs, "lr": self.lr,
                "warmup": self.warmup, "wd": self.wd, "cd": self.cd, "z_loss": self.z_loss, "seed": cfg.seed,
                "beta2": cfg.beta2, "grad_clip": cfg.grad_clip, "multiple_data_passes": cfg.multiple_data_passes,
                "data": fingerprints}


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


def make_plan(cfg: TrainConfig, sources, world: int) -> Plan:
    base = get_scale(cfg.scale)
    changes = {k: getattr(cfg, k) for k in ("tokens", "chinchilla_multiplier", "warmup", "lr", "wd", "cd", "z_loss",
                                            "seq_len", "vocab_size") if getattr(cfg, k) is not None}
    datasets = [d for s in sources for d in s.datasets]
    seqlen = datasets[0].seqlen
    recorded = [d.vocab_size for d in datasets if d.vocab_size] + [d.pad_id + 1 for d in datasets if d.pad_id is not None]
    need = max(recorded, default=0)  # open_lm tars record no tokenizer: their ids are checked as they are read
    if base.vocab_from_data and "vocab_size" not in changes and need:
        changes["vocab_size"] = _round_up(need, 128)
    scale = dataclasses.replace(base, **changes)
    args = scale.model_args()
    if seqlen != args.seq_len + 1:
        raise DclmError(f"the data's contexts hold {seqlen} tokens but scale {scale.name} trains on "
                        f"seq_len {args.seq_len} (+1 for the targets); pass --seq-len {seqlen - 1} or use data "
                        f"tokenized with --seqlen {args.seq_len + 1}")
    if need > args.vocab_size:
        raise DclmError(f"the data's tokenizer has {need} ids but the model has {args.vocab_size} embedding rows; "
                        f"pass --vocab-size {_round_up(need, 128)}")
    global_bs = cfg.global_batch_size or scale.global_bs
    micro_bs = cfg.micro_batch_size or min(scale.micro_bs, max(1, global_bs // world))
    if global_bs % (micro_bs * world):
        raise ConfigError("global_batch_size", f"{global_bs} sequences do not split into micro-batches of "
                          f"{micro_bs} on {world} process(es); make it a multiple of {micro_bs * world}")
    scale = dataclasses.replace(scale, global_bs=global_bs)
    total = scale.total_steps
    if total < 1:
        raise ConfigError("tokens", f"a budget of {scale.budget_tokens:,} tokens is less than one step of "
                          f"{global_bs} x {args.seq_len} tokens")
    every = cfg.checkpoint_every or max(1, total // scale.num_checkpoints)
    return Plan(scale, args.to_dict(), total, min(total, cfg.max_steps or total), global_bs, micro_bs,
                global_bs // (micro_bs * world), scale.lr, scale.warmup, scale.wd, scale.cd, scale.z_loss, every)


def _digest(fields: dict) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def _check_resume(state: dict, fields: dict, path: Path) -> None:
    old = state.get("fields", {})
    diff = sorted(k for k in set(old) | set(fields) if old.get(k) != fields.get(k))
    if diff:
        raise DclmError(f"{path} was written by a run with other {', '.join(diff)}; resume with the same "
                        "settings or start a new --output")


class _Metrics:
    """metrics.jsonl (rank 0), cut back to the resumed step so a resumed run's file equals an uninterrupted one's,
    and TensorBoard scalars when tensorboard is installed."""

    def __init__(self, output: str, resumed_step: int, tensorboard: bool):
        self.path = Path(output) / METRICS
        kept = []
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    if json.loads(line)["step"] <= resumed_step:
                        kept.append(line)
                except (ValueError, KeyError, TypeError):
                    continue
        from dclm.io import atomic_open

        with atomic_open(str(self.path), "w") as f:
            f.write("".join(x + "\n" for x in kept))
        self._f = open(self.path, "a")
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(output) / "tensorboard"), purge_step=resumed_step + 1)
            except ImportError:
                log.debug("tensorboard not installed: metrics.jsonl only")

    def write(self, record: dict) -> None:
        self._f.write(json.dumps(record) + "\n")
        self._f.flush()
        if self._tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):
                    self._tb.add_scalar(f"train/{k}", v, record["step"])

    def close(self) -> None:
        self._f.close()
        if self._tb is not None:
            self._tb.close()


def run_train(cfg: TrainConfig) -> TrainResult:
    from dclm.train import dist

    get_scale(cfg.scale)  # an unknown scale is reported before anything else is opened
    d = dist.init(cfg.device)
    try:
        return _train(cfg, d)
    finally:
        dist.close(d)


def _train(cfg: TrainConfig, d) -> TrainResult:
    import torch

    from dclm.model.openlm import ModelArgs, Transformer
    from dclm.runtime.progress import progress_bar
    from dclm.train import checkpoints, dist
    from dclm.train.data import DataOrder, Prefetcher, open_sources
    from dclm.train.optim import flops_per_token, lm_loss, lr_at, make_optimizer, peak_flops

    sources = open_sources(cfg.data)
    plan = make_plan(cfg, sources, d.world)
    args = ModelArgs(**plan.model)
    fields = plan.digest_fields(cfg, [ds.fingerprint() for s in sources for ds in s.datasets])
    resume_from = checkpoints.resolve(cfg.output, cfg.resume)
    if resume_from is None and checkpoints.list_checkpoints(cfg.output):
        raise DclmError(f"{cfg.output} already holds checkpoints; pass --resume latest to continue that run, "
                        "or choose another --output")
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and d.device.type == "cuda")
    use_compile = cfg.compile if cfg.compile is not None else d.device.type == "cuda"

    torch.manual_seed(cfg.seed)
    model = Transformer(args)
    order = DataOrder(sources, cfg.seed, plan.global_bs, cfg.multiple_data_passes)
    start = 0
    optim_state = None
    if resume_from is not None:
        model_state, optim_state, state = checkpoints.load(resume_from, d.device)
        _check_resume(state, fields, resume_from)
        try:
            model.load_state_dict(model_state, strict=True)
        except RuntimeError as e:
            raise DclmError(f"{resume_from}: weights do not fit the model ({str(e).splitlines()[0]})") from None
        order.load_state(state["data"])
        start = int(state["step"])
    order.check_budget(plan.stop_step - start)
    model.to(d.device)
    model.train()
    wrapped = dist.wrap(model, d, cfg.fsdp)
    optimizer = make_optimizer(wrapped, plan.lr, plan.wd, cfg.beta2, d.device)
    if optim_state is not None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        try:
            set_optimizer_state_dict(wrapped, optimizer, optim_state, options=StateDictOptions(full_state_dict=True))
        except (KeyError, ValueError, RuntimeError) as e:
            raise DclmError(f"{resume_from}: optimizer state does not fit the model ({e})") from None
    step_fn = torch.compile(wrapped) if use_compile else wrapped

    os.makedirs(cfg.output, exist_ok=True)
    metrics = _Metrics(cfg.output, start, cfg.tensorboard) if d.main else None
    tokens_per_step = plan.global_bs * args.seq_len
    flops_step = flops_per_token(args) * tokens_per_step
    peak = peak_flops(d.device, bf16, cfg.peak_tflops)
    if d.main:
        log.info("scale %s: %s params, %s steps of %s sequences (%d x %d micro-batches x %d processes), lr %g, "
                 "warmup %d, %s on %s%s", plan.scale.name, f"{dclm_param_count(args):,}", f"{plan.total_steps:,}",
                 plan.global_bs, plan.micro_bs, plan.accum, d.world, plan.lr, plan.warmup,
                 "bf16" if bf16 else "fp32", d.device, f", resuming at step {start}" if start else "")

    loader = Prefetcher(order, start, plan.stop_step, d.rank, d.world, plan.micro_bs, cfg.prefetch,
                        pin=d.device.type == "cuda", vocab_size=args.vocab_size)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 and d.device.type == "cuda" else \
        (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    losses: list[tuple[int, float]] = []
    bar = progress_bar(plan.stop_step - start, desc=f"train {plan.scale.name}", unit="step",
                       enabled=cfg.progress and d.main)
    t_run = time.perf_counter()
    t_log, steps_since_log, trained_steps, saved_at = t_run, 0, 0, start
    try:
        for step in range(start, plan.stop_step):
            lr = lr_at(step, plan.lr, plan.warmup, plan.total_steps, plan.cd)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss_sum = torch.zeros((), device=d.device)
            ce_sum = torch.zeros((), device=d.device)
            for m in range(plan.accum):
                batch = loader.get()
                tokens = batch.tokens.to(d.device, non_blocking=True)
                last = m == plan.accum - 1
                with dist.no_sync(wrapped, d, last):
                    with autocast():
                        logits = step_fn(tokens[:, :-1])
                    loss, ce = lm_loss(logits.float(), tokens[:, 1:], plan.z_loss)
                    (loss / plan.accum).backward()
                loss_sum += loss.detach() / plan.accum
                ce_sum += ce.detach() / plan.accum
            data_state = batch.data_state
            grad_norm = torch.nn.utils.clip_grad_norm_(wrapped.parameters(), cfg.grad_clip if cfg.grad_clip > 0
                                                       else float("inf"))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            done = step + 1
            trained_steps += 1
            steps_since_log += 1
            bar.update(1)
            if done % cfg.log_every == 0 or done == plan.stop_step:
                loss_v = float(dist.mean(loss_sum, d))
                ce_v = float(dist.mean(ce_sum, d))
                if not math.isfinite(loss_v):
                    raise DclmError(f"the loss is {loss_v} at step {done}; lower --lr or raise --warmup")
                now = time.perf_counter()
                tps = steps_since_log * tokens_per_step / (now - t_log)
                record = {"step": done, "loss": loss_v, "ce_loss": ce_v, "lr": lr, "grad_norm": float(grad_norm),
                          "tokens": done * tokens_per_step, "tokens_per_s": tps,
                          "mfu": (tps / tokens_per_step * flops_step / (peak * d.world)) if peak else None,
                          "elapsed_s": now - t_run}
                losses.append((done, loss_v))
                if metrics:
                    metrics.write(record)
                bar.set_postfix(loss=f"{loss_v:.3f}", tok_s=f"{tps:,.0f}")
                t_log, steps_since_log = now, 0
            if done % plan.checkpoint_every == 0 or done == plan.stop_step:
                t0 = time.perf_counter()
                _save(cfg, d, plan, args, wrapped, optimizer, data_state, done, fields, checkpoints)
                saved_at = done
                t_log += time.perf_counter() - t0  # checkpoint time is not training throughput
    finally:
        bar.close()
        loader.close()
        if metrics:
            metrics.close()
    seconds = time.perf_counter() - t_run
    model_dir = None
    if saved_at == plan.total_steps and d.main:
        model_dir = str(_export(cfg, plan, args, sources, checkpoints.checkpoint_dir(cfg.output, saved_at), fields))
    dist.barrier(d)
    tokens = trained_steps * tokens_per_step
    tps = tokens / seconds if seconds > 0 else 0.0
    return TrainResult(output=cfg.output, model_dir=model_dir, steps=plan.stop_step, total_steps=plan.total_steps,
                       tokens=tokens, seconds=seconds, tokens_per_s=tps,
                       mfu=(tps / tokens_per_step * flops_step / (peak * d.world)) if peak else None,
                       resumed_from=start if resume_from is not None else None, losses=losses)


def _save(cfg, d, plan, args, wrapped, optimizer, data_state, step, fields, checkpoints) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

    from dclm.train import dist

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_state = get_model_state_dict(wrapped, options=opts)
    optim_state = get_optimizer_state_dict(wrapped, optimizer, options=opts)
    if d.main:
        state = {"step": step, "total_steps": plan.total_steps, "data": data_state, "fields": fields,
                 "digest": _digest(fields), "scale": plan.scale.name, "world_size": d.world}
        checkpoints.save(cfg.output, step, args, model_state, optim_state, state, cfg.keep_checkpoints)
    dist.barrier(d)


def _export(cfg: TrainConfig, plan: Plan, args, sources, final_ckpt: Path, fields: dict) -> Path:
    """OUTPUT/model: the final weights in the apple/DCLM-7B layout, the tokenizer beside them, and DCLM's model
    reference JSON in OUTPUT."""
    import shutil

    from dclm.io import atomic_open

    out = Path(cfg.output) / "model"
    tmp = out.with_name(".model.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in final_ckpt.iterdir():
        if f.name.startswith("model") or f.name == "config.json":
            shutil.copy2(f, tmp / f.name)
    tok_name = cfg.tokenizer or next((ds.tokenizer for s in sources for ds in s.datasets if ds.tokenizer), None)
    if tok_name:
        from dclm.tokenize.tokenizer import resolve_tokenizer_json

        try:
            (tmp / "tokenizer.json").write_text(resolve_tokenizer_json(tok_name), encoding="utf-8")
        except DclmError as e:
            log.warning("no tokenizer.json beside the model (%s); pass --tokenizer to `dclm generate`", e)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    ref = model_reference(cfg, plan, args, sources, out, fields)
    with atomic_open(str(Path(cfg.output) / "model_reference.json"), "w") as f:
        f.write(json.dumps(ref, indent=2) + "\n")
    return out


def _p(x: float) -> str:
    return f"{x:g}".replace(".", "p")


def model_reference(cfg: TrainConfig, plan: Plan, args, sources, model_dir: Path, fields: dict) -> dict:
    """DCLM's ModelReference (exp_data/models/*.json): the name pattern of training/train.py, the scale's
    hyperparameters with seed, vocab_size and norm, and the open_lm arguments the run corresponds to."""
    import uuid
    from datetime import datetime, timezone

    s = plan.scale
    data_name = _dataset_name(sources)
    name = cfg.name or (f"{data_name}-{s.name}-warm={s.warmup}-lr={_p(s.lr)}-wd={_p(s.wd)}-cd={_p(s.cd)}-"
                        f"bs={plan.global_bs}-mult={_p(s.chinchilla_multiplier)}-seed={cfg.seed}-"
                        f"tokens={s.budget_tokens}")
    hyper = {"model": s.model, "params": dclm_param_count(args),
             "params_no_embed": dclm_param_count(args) - args.vocab_size * args.dim, "tokens": s.budget_tokens,
             "warmup": s.warmup, "lr": s.lr, "wd": s.wd, "cd": s.cd, "global_bs": plan.global_bs, "acc": plan.accum,
             "qk_norm": args.apply_qk_norm, "z_loss": s.z_loss, "grad_checkpointing": False,
             "chinchilla_multiplier": s.chinchilla_multiplier, "seed": cfg.seed, "vocab_size": args.vocab_size,
             "norm": "gain_only_lp_layer_norm"}
    open_lm_args = ["--precision", "amp_bfloat16" if cfg.precision != "fp32" else "fp32", "--global-batch-size",
                    str(plan.global_bs), "--grad-clip-norm", str(cfg.grad_clip), "--lr", str(s.lr), "--warmup",
                    str(s.warmup), "--wd", str(s.wd), "--beta2", str(cfg.beta2), "--epochs", str(s.num_checkpoints),
                    "--seed", str(cfg.seed), "--accum-freq", str(plan.accum), "--model-norm",
                    "gain_only_lp_layer_norm", "--lr-cooldown-end", str(s.cd), "--train-num-samples",
                    str(s.budget_tokens // s.num_checkpoints), "--qk-norm", "--z-loss", str(s.z_loss)]
    return {"name": name, "dataset_name": data_name, "dataset_uuid": _dataset_uuid(sources),
            "hyperparameters": hyper, "checkpoint_url": str(model_dir.resolve()), "open_lm_version": None,
            "open_lm_args": open_lm_args, "results": [], "params_url": None,
            "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, name + "#" + _digest(fields))),
            "creation_date": datetime.now(timezone.utc).strftime("%Y_%m_%d-%H_%M_%S"), "failed": False,
            "error": None, "trainer": "dclm train"}


def _dataset_name(sources) -> str:
    names = [Path(ds.path).resolve().name for s in sources for ds in s.datasets]
    return "+".join(dict.fromkeys(names))


def _dataset_uuid(sources) -> str | None:
    """The uuid of the first dataset reference JSON tokenize-shuffle left beside the data."""
    for ds in (ds for s in sources for ds in s.datasets if ds.reference):
        try:
            return json.loads(Path(ds.reference).read_text()).get("uuid")
        except (OSError, ValueError):
            return None
    return None
