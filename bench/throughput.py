"""Training throughput and MFU of a preset's HF Llama, trained the way ``lrpath_core.train`` trains.

    python bench/throughput.py --preset base --seq-len 1024 --batch-size 32 --steps 30 --warmup 10

Random token batches; AdamW from ``make_optimizer`` (fused on CUDA), bf16 autocast and TF32 on CUDA,
``torch.compile`` on CUDA by default, gradient clipping at 1.0, one host sync per step for the loss
(as the trainer logs it). The LR stays at ``lr_max`` (the trainer's per-step scheduler update is a
Python assignment and is left out). Steps after ``--warmup`` are timed (``torch.cuda.synchronize``
on CUDA).

MFU is counted as DESIGN.md §4 fixes it: FLOPs per token = 6·N + 12·L·d·T, N = parameters in
matrix products (every linear layer and the untied LM head, not the input embedding table);
MFU = tokens/s · FLOPs per token / peak, peak = 989 TFLOP/s (H100 SXM, dense bf16) unless
``--peak-tflops`` says otherwise. On CPU there is no default peak: MFU is n/a, achieved TFLOP/s is
still printed.

Runs with only torch + transformers + numpy: the lent GPU image has no pydantic (nor yaml), which
``lrpath_core.config`` needs, so when the ``lrpath_core`` imports fail the script uses the local
mirrors below (preset dims, LlamaConfig, N, FLOPs, AdamW groups) and says so in its output.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

H100_BF16_DENSE_TFLOPS = 989.0

# Mirror of lrpath_core/model_presets.py (hidden, layers, heads, intermediate, vocab, seq_len), used
# only when lrpath_core cannot be imported; when it can, _check_mirror() compares the two.
LOCAL_PRESETS: dict[str, tuple[int, int, int, int, int, int]] = {
    "tiny": (128, 4, 4, 384, 4096, 128),
    "small": (384, 8, 6, 1024, 8192, 512),
    "base": (768, 12, 12, 2048, 32000, 1024),
    "large": (1024, 24, 16, 2560, 32000, 1024),
}
# Mirror of lrpath_core.config.OptimizerConfig's defaults.
LOCAL_OPTIMIZER = {"lr_max": 3e-3, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.95, "grad_clip": 1.0}
SEED = 1234

try:
    from lrpath_core.config import ModelConfig, OptimizerConfig
    from lrpath_core.model import build_model, flops_per_token, llama_config, matmul_params
    from lrpath_core.model_presets import PRESETS
    from lrpath_core.train import make_optimizer

    LRPATH_CORE = True
except ImportError as exc:  # the GPU image: no pydantic / yaml
    LRPATH_CORE = False
    LRPATH_CORE_ERROR = f"{type(exc).__name__}: {exc}"


def _local_llama_config(preset: str, vocab_size: int, seq_len: int) -> LlamaConfig:
    """Same LlamaConfig as lrpath_core.model.llama_config for an unmodified preset."""
    hidden, layers, heads, intermediate, _, _ = LOCAL_PRESETS[preset]
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=seq_len,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        attention_dropout=0.0,
        bos_token_id=None,
        eos_token_id=0,
        pad_token_id=None,
        use_cache=False,
    )


def _local_matmul_params(config: LlamaConfig) -> int:
    d, layers = config.hidden_size, config.num_hidden_layers
    kv = config.num_key_value_heads * (d // config.num_attention_heads)
    attn = d * d * 2 + d * kv * 2
    mlp = 3 * d * config.intermediate_size
    return layers * (attn + mlp) + d * config.vocab_size


def _local_flops_per_token(config: LlamaConfig, seq_len: int) -> int:
    return 6 * _local_matmul_params(config) + 12 * config.num_hidden_layers * config.hidden_size * seq_len


def _local_build_model(config: LlamaConfig, seed: int) -> LlamaForCausalLM:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)


def _local_make_optimizer(model: torch.nn.Module, device: torch.device) -> torch.optim.AdamW:
    """Same as lrpath_core.train.make_optimizer with OptimizerConfig's defaults."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": LOCAL_OPTIMIZER["weight_decay"]},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups,
        lr=LOCAL_OPTIMIZER["lr_max"],
        betas=(LOCAL_OPTIMIZER["beta1"], LOCAL_OPTIMIZER["beta2"]),
        eps=1e-8,
        fused=device.type == "cuda",
    )


def _check_mirror() -> list[str]:
    """Differences between the local mirrors and lrpath_core (empty when they agree)."""
    problems = []
    for name, preset in PRESETS.items():
        dims = (
            preset.hidden_size,
            preset.num_layers,
            preset.num_heads,
            preset.intermediate_size,
            preset.vocab_size,
            preset.seq_len,
        )
        if LOCAL_PRESETS.get(name) != dims:
            problems.append(f"preset {name}: lrpath_core {dims}, local {LOCAL_PRESETS.get(name)}")
    defaults = OptimizerConfig()
    for key, value in LOCAL_OPTIMIZER.items():
        if getattr(defaults, key) != value:
            problems.append(f"optimizer {key}: lrpath_core {getattr(defaults, key)}, local {value}")
    return problems


def _pick_device(choice: str) -> torch.device:
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for but no CUDA device is visible")
    return torch.device("cuda", 0)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{name} ({torch.get_num_threads()} torch threads)"


def _machine_busy_seconds() -> float | None:
    """CPU-seconds all processes on this machine have used since boot (Linux /proc/stat), or None."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="base", choices=list(LOCAL_PRESETS))
    parser.add_argument("--vocab", type=int, default=None, help="vocabulary size (default: the preset's)")
    parser.add_argument("--seq-len", type=int, default=None, help="tokens per sequence (default: preset's)")
    parser.add_argument("--batch-size", type=int, default=32, help="sequences per optimizer step")
    parser.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    parser.add_argument("--steps", type=int, default=30, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (compilation included)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile the model (default: on for CUDA, off for CPU, as the trainer)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help=f"peak for MFU (default on CUDA: {H100_BF16_DENSE_TFLOPS:g}, H100 SXM dense bf16; none on CPU)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    if args.batch_size % args.grad_accum:
        parser.error(
            f"--batch-size ({args.batch_size}) must be a multiple of --grad-accum ({args.grad_accum})"
        )
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be >= 1 and --warmup >= 0")
    return args


def run(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = _pick_device(args.device)
    preset_vocab, preset_seq = LOCAL_PRESETS[args.preset][4:]
    vocab = args.vocab or preset_vocab
    seq_len = args.seq_len or preset_seq

    if LRPATH_CORE:
        config = llama_config(ModelConfig(preset=args.preset), vocab, seq_len)
        model = build_model(config, SEED).to(device)
        optimizer = make_optimizer(model, OptimizerConfig(), device)
        n_matmul, fpt = matmul_params(config), flops_per_token(config, seq_len)
        grad_clip = OptimizerConfig().grad_clip
        mirror_problems = _check_mirror()
        local = _local_llama_config(args.preset, vocab, seq_len)
        if local.to_dict() != config.to_dict():
            mirror_problems.append("the local LlamaConfig differs from lrpath_core.model.llama_config's")
        if (_local_matmul_params(local), _local_flops_per_token(local, seq_len)) != (n_matmul, fpt):
            mirror_problems.append("the local N / FLOPs per token differ from lrpath_core.model's")
    else:
        config = _local_llama_config(args.preset, vocab, seq_len)
        model = _local_build_model(config, SEED).to(device)
        optimizer = _local_make_optimizer(model, device)
        n_matmul, fpt = _local_matmul_params(config), _local_flops_per_token(config, seq_len)
        grad_clip = LOCAL_OPTIMIZER["grad_clip"]
        mirror_problems = []
    n_total = sum(p.numel() for p in model.parameters())

    use_compile = args.compile if args.compile is not None else device.type == "cuda"
    forward = torch.compile(model) if use_compile else model
    autocast = (
        torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else contextlib.nullcontext()
    )
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.cuda.reset_peak_memory_stats(device)

    micro = args.batch_size // args.grad_accum
    generator = torch.Generator().manual_seed(SEED)
    batches = [torch.randint(0, vocab, (args.batch_size, seq_len), generator=generator) for _ in range(4)]

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def train_step(step: int) -> float:
        batch = batches[step % len(batches)]
        total = torch.zeros((), device=device)
        for index in range(args.grad_accum):
            ids = batch[index * micro : (index + 1) * micro].to(device, non_blocking=True)
            with autocast:
                loss = forward(input_ids=ids, labels=ids).loss / args.grad_accum
            loss.backward()
            total += loss.detach()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(total)  # the trainer reads the loss every step: one host sync per step

    model.train()
    sync()
    started = time.perf_counter()
    for step in range(args.warmup):
        train_step(step)
    sync()
    warmup_seconds = time.perf_counter() - started

    step_times, loss = [], float("nan")
    busy0, own0, wall0 = _machine_busy_seconds(), time.process_time(), time.perf_counter()
    for step in range(args.warmup, args.warmup + args.steps):
        t0 = time.perf_counter()
        loss = train_step(step)
        sync()
        step_times.append(time.perf_counter() - t0)

    seconds = sum(step_times)
    busy1, own1, wall1 = _machine_busy_seconds(), time.process_time(), time.perf_counter()
    # Cores that other processes kept busy while the timed steps ran: on a shared CPU machine a
    # second multithreaded job on the same cores slows torch's CPU kernels many times over.
    other_cores = None
    if busy0 is not None and busy1 is not None:
        other_cores = max(0.0, ((busy1 - busy0) - (own1 - own0)) / (wall1 - wall0))
    tokens_per_step = args.batch_size * seq_len
    tokens_per_s = tokens_per_step * args.steps / seconds
    achieved = tokens_per_s * fpt
    peak_tflops = args.peak_tflops
    if peak_tflops is None and device.type == "cuda":
        peak_tflops = H100_BF16_DENSE_TFLOPS
    return {
        "device": _device_name(device),
        "device_type": device.type,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "lrpath_core": LRPATH_CORE,
        "lrpath_core_error": None if LRPATH_CORE else LRPATH_CORE_ERROR,
        "mirror_mismatch": mirror_problems,
        "preset": args.preset,
        "hidden_size": config.hidden_size,
        "num_layers": config.num_hidden_layers,
        "num_heads": config.num_attention_heads,
        "vocab_size": vocab,
        "seq_len": seq_len,
        "batch_size": args.batch_size,
        "grad_accum": args.grad_accum,
        "compile": use_compile,
        "dtype": "bf16 autocast + tf32" if device.type == "cuda" else "fp32",
        "params_total": n_total,
        "params_matmul": n_matmul,
        "flops_per_token": fpt,
        "warmup_steps": args.warmup,
        "warmup_seconds": warmup_seconds,
        "steps": args.steps,
        "step_time_mean_s": seconds / args.steps,
        "step_time_median_s": statistics.median(step_times),
        "tokens_per_s": tokens_per_s,
        "achieved_tflops": achieved / 1e12,
        "peak_tflops": peak_tflops,
        "mfu": achieved / (peak_tflops * 1e12) if peak_tflops else None,
        "final_loss": loss,
        "cpu_cores": os.cpu_count(),
        "other_processes_cores": other_cores,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
    }


def report(r: dict) -> str:
    mfu = f"{100 * r['mfu']:.1f}% of {r['peak_tflops']:g} TFLOP/s" if r["mfu"] is not None else "n/a (CPU)"
    source = "lrpath_core" if r["lrpath_core"] else f"local mirrors ({r['lrpath_core_error']})"
    lines = [
        f"device        {r['device']}",
        f"versions      torch {r['torch']}, transformers {r['transformers']}, python {r['python']}",
        f"built from    {source}",
        f"model         {r['preset']}: d {r['hidden_size']}, {r['num_layers']} layers, {r['num_heads']} heads, "
        f"vocab {r['vocab_size']}",
        f"params        {r['params_total']:,} total, N = {r['params_matmul']:,} in matmuls",
        f"batch         {r['batch_size']} x {r['seq_len']} tokens, grad-accum {r['grad_accum']}, "
        f"{r['dtype']}, compile {'on' if r['compile'] else 'off'}",
        f"warm-up       {r['warmup_steps']} steps in {r['warmup_seconds']:.1f} s",
        f"step time     {1e3 * r['step_time_mean_s']:.1f} ms mean, {1e3 * r['step_time_median_s']:.1f} ms median "
        f"over {r['steps']} steps",
        f"tokens/s      {r['tokens_per_s']:,.0f}",
        f"FLOPs/token   {r['flops_per_token']:,} (6N + 12·L·d·T)",
        f"achieved      {r['achieved_tflops']:.3f} TFLOP/s",
        f"MFU           {mfu}",
        f"final loss    {r['final_loss']:.3f}",
    ]
    if r["device_type"] == "cpu" and r["other_processes_cores"] is not None:
        lines.append(
            f"contention    other processes kept {r['other_processes_cores']:.2f} of {r['cpu_cores']} cores "
            "busy during the timed steps"
        )
    if r["peak_memory_gib"] is not None:
        lines.append(f"peak memory   {r['peak_memory_gib']:.1f} GiB")
    for problem in r["mirror_mismatch"]:
        lines.append(f"WARNING       local mirror differs from lrpath_core: {problem}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    print(json.dumps(result) if args.json else report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
