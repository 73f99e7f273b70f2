"""Training throughput and MFU of a preset's HF Llama, trained the way ``lrpath_core.train`` trains.

    python bench/throughput.py --preset base --seq-len 1024 --batch-size 32 --steps 30 --warmup 10

Random token batches; each step is the trainer's own ``train_step`` (AdamW from ``make_optimizer``,
fused on CUDA; bf16 autocast and TF32 on CUDA; gradient clipping at 1.0; one host sync per step for
the loss), ``torch.compile`` on CUDA by default. The LR stays at ``LR`` (the trainer's per-step
scheduler update is a Python assignment and is left out). Vocabulary and sequence length default to
the preset's. Steps after ``--warmup`` are timed (``torch.cuda.synchronize`` on CUDA).

MFU is counted as DESIGN.md §4 fixes it: FLOPs per token = 6·N + 12·L·d·T, N = parameters in
matrix products (every linear layer and the untied LM head, not the input embedding table);
MFU = tokens/s · FLOPs per token / peak, peak = 989 TFLOP/s (H100 SXM, dense bf16) unless
``--peak-tflops`` says otherwise. On CPU there is no default peak: MFU is n/a, achieved TFLOP/s is
still printed.

Runs with only torch + transformers: it imports the trainer's own code (``lrpath_core.model``,
``model_presets``, ``optimizer``, ``train_step``), none of which needs pydantic or yaml, which the
lent GPU image lacks. The optimizer's values below do not change a step's cost.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lrpath_core.model import build_model, flops_per_token, llama_config, matmul_params  # noqa: E402
from lrpath_core.model_presets import PRESETS  # noqa: E402
from lrpath_core.optimizer import make_optimizer  # noqa: E402
from lrpath_core.train_step import train_step  # noqa: E402

H100_BF16_DENSE_TFLOPS = 989.0
SEED = 1234
# The trainer takes these from lrpath.yaml; their values do not change what a step costs.
LR, WEIGHT_DECAY, BETAS, GRAD_CLIP = 3e-3, 0.1, (0.9, 0.95), 1.0


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
    parser.add_argument("--preset", default="base", choices=list(PRESETS))
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
    parser.add_argument(
        "--compile-mode",
        default="default",
        choices=["default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune"],
        help="torch.compile mode (reduce-overhead adds CUDA graphs)",
    )
    parser.add_argument(
        "--num-heads",
        type=int,
        default=None,
        help="attention heads (default: the preset's; head dim = d / heads)",
    )
    parser.add_argument(
        "--param-dtype",
        default="fp32",
        choices=["fp32", "bf16"],
        help="dtype the weights and AdamW's moments are kept in (bf16: no per-step casts, half the traffic)",
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
    preset = PRESETS[args.preset]
    vocab = args.vocab or preset.vocab_size
    seq_len = args.seq_len or preset.seq_len

    config = llama_config(preset.shape(num_heads=args.num_heads), vocab, seq_len)
    model = build_model(config, SEED).to(device)
    if args.param_dtype == "bf16":
        model = model.to(torch.bfloat16)
    optimizer = make_optimizer(model, LR, WEIGHT_DECAY, BETAS, fused=device.type == "cuda")
    n_matmul, fpt = matmul_params(config), flops_per_token(config, seq_len)
    n_total = sum(p.numel() for p in model.parameters())

    use_compile = args.compile if args.compile is not None else device.type == "cuda"
    forward = torch.compile(model, mode=args.compile_mode) if use_compile else model
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.cuda.reset_peak_memory_stats(device)

    generator = torch.Generator().manual_seed(SEED)
    batches = [torch.randint(0, vocab, (args.batch_size, seq_len), generator=generator) for _ in range(4)]

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def step_on(step: int) -> float:
        batch = batches[step % len(batches)]
        return train_step(
            model,
            optimizer,
            batch,
            device=device,
            grad_accum=args.grad_accum,
            grad_clip=GRAD_CLIP,
            forward=forward,
        )

    model.train()
    sync()
    started = time.perf_counter()
    for step in range(args.warmup):
        step_on(step)
    sync()
    warmup_seconds = time.perf_counter() - started

    step_times, loss = [], float("nan")
    busy0, own0, wall0 = _machine_busy_seconds(), time.process_time(), time.perf_counter()
    for step in range(args.warmup, args.warmup + args.steps):
        t0 = time.perf_counter()
        loss = step_on(step)
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
        "preset": args.preset,
        "hidden_size": config.hidden_size,
        "num_layers": config.num_hidden_layers,
        "num_heads": config.num_attention_heads,
        "vocab_size": vocab,
        "seq_len": seq_len,
        "batch_size": args.batch_size,
        "grad_accum": args.grad_accum,
        "compile": use_compile,
        "compile_mode": args.compile_mode,
        "param_dtype": args.param_dtype,
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
    lines = [
        f"device        {r['device']}",
        f"versions      torch {r['torch']}, transformers {r['transformers']}, python {r['python']}",
        f"model         {r['preset']}: d {r['hidden_size']}, {r['num_layers']} layers, {r['num_heads']} heads, "
        f"vocab {r['vocab_size']}",
        f"params        {r['params_total']:,} total, N = {r['params_matmul']:,} in matmuls",
        f"batch         {r['batch_size']} x {r['seq_len']} tokens, grad-accum {r['grad_accum']}, "
        f"{r['dtype']}, weights {r['param_dtype']}, "
        f"compile {r['compile_mode'] if r['compile'] else 'off'}",
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
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    print(json.dumps(result) if args.json else report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
