"""A demo training run: the step loop with its progress bar, an evaluation (sample grid, scores,
memorization check, checkpoint) every ``eval_every`` steps, then curves, the timing table and the
summary (``scores.txt``)."""

from __future__ import annotations

import dataclasses
import json
import os
import time

from . import report
from .cli import console
from .config import Config, resolve_config
from .data import load_training_images
from .evaluate import SCORE_FIELDS, Evaluator
from .trainer import Trainer

METRIC_FIELDS = [
    "step",
    "loss_G",
    "loss_D",
    "d_real",
    "d_fake",
    "r1",
    "pl",
    "pl_mean",
    "bcr",
    "ada_p",
    "ada_rt",
    "sec",
    "cpu_sec",
]


def run(cfg: Config, ckpt: dict | None = None) -> dict:
    """Train ``cfg`` (from ``ckpt`` when resuming) and write every output into ``cfg.out``; returns
    ``{"out", "scores" (the evaluation rows), "train_s", "wall_train_s", "wall_s", "timing"}``."""
    from tqdm import tqdm

    cfg = resolve_config(cfg)
    t_start = time.perf_counter()
    say, threads, auto = console(cfg)

    data = load_training_images(cfg.data, cfg.size)
    trainer = Trainer(cfg, data)
    if ckpt is not None:
        trainer.load_state_dict(ckpt)
        say(f"resumed at step {trainer.step}")
    resume_step = trainer.step if ckpt is not None else None
    with open(os.path.join(cfg.out, "config.json"), "w") as f:
        json.dump(dataclasses.asdict(cfg), f, indent=2)
    ada = f" ({cfg.ada_preset}, target r_t {cfg.ada_target}, {cfg.ada_kimg} kimg)" if cfg.augment == "ada" else ""
    split = " (the digits' training split)" if cfg.data == "digits" else ""
    say(
        f"data: {tuple(data.shape)}{split} in [{data.min():.2f}, {data.max():.2f}]; G {_count(trainer.G)} params, "
        f"D {_count(trainer.D)} params, num_ws {trainer.G.num_ws}; steps {cfg.steps}, batch {cfg.batch}, loss {cfg.loss}, "
        f"lr {cfg.lr}, R1 γ={cfg.r1_gamma}/{cfg.r1_interval}, PL w={cfg.pl_weight}/{cfg.pl_interval}, "
        f"augment {cfg.augment}{ada}, bCR {cfg.bcr}, G_ema {cfg.ema_kimg} kimg"
    )

    evaluator = Evaluator(cfg.data, cfg.size)
    if evaluator.active:
        say(evaluator.describe())
    metrics = report.CsvLog(os.path.join(cfg.out, "metrics.csv"), METRIC_FIELDS, resume_step)
    # an evaluation at step k happens after k steps: keep it when resuming at k
    scores = report.CsvLog(os.path.join(cfg.out, "scores.csv"), SCORE_FIELDS, None if resume_step is None else resume_step + 1)
    results = {"out": cfg.out, "scores": []}

    def evaluate():
        step = trainer.step
        grid = trainer.sample(64, seed=cfg.seed + 777)
        report.save_grid(grid, os.path.join(cfg.out, f"samples_{step:06d}.png"), nrow=8)
        row = {"step": step}
        if evaluator.active:
            row.update(evaluator(trainer.sample(cfg.n_eval, seed=cfg.seed + 999)))
            say(
                f"[step {step:5d}] digits score {row['score']:5.2f} (confidence {row['confidence']:.3f}), "
                f"digits FD {row['fd']:7.2f}, nearest training digit {row['nn_gen']:.3f} "
                f"(held-out digits {row['nn_real']:.3f})"
            )
            results["scores"].append(row)
        scores.write(row)
        return grid

    t_train = cpu_train = 0.0  # wall and process CPU seconds in training steps (evaluations excluded)
    if trainer.step == 0:
        evaluate()
    bar = tqdm(total=cfg.steps, initial=trainer.step, disable=not cfg.progress, dynamic_ncols=True, mininterval=1.0, unit="it")
    grid = None
    while trainer.step < cfg.steps:
        t, c = time.perf_counter(), time.process_time()
        row = trainer.train_step()
        row["sec"], row["cpu_sec"] = time.perf_counter() - t, time.process_time() - c
        t_train += row["sec"]
        cpu_train += row["cpu_sec"]
        metrics.write(row)
        if trainer.step % 5 == 0 or trainer.step == cfg.steps:
            extra = {"bcr": f"{row['bcr']:.3g}"} if "bcr" in row else {}
            if "ada_p" in row:
                extra["p"] = f"{row['ada_p']:.3f}"
            bar.set_postfix(
                G=f"{row['loss_G']:.3f}",
                D=f"{row['loss_D']:.3f}",
                r1=f"{trainer.last['r1']:.3g}",
                pl=f"{trainer.last['pl']:.3g}",
                **extra,
                refresh=False,
            )
        bar.update(1)
        if trainer.step % cfg.eval_every == 0 or trainer.step == cfg.steps:
            grid = evaluate()
            trainer.save(os.path.join(cfg.out, "checkpoint.pt"))
    bar.close()
    if grid is None:
        grid = trainer.sample(64, seed=cfg.seed + 777)
        trainer.save(os.path.join(cfg.out, "checkpoint.pt"))
    report.save_grid(grid, os.path.join(cfg.out, "samples.png"), nrow=8)
    sc = evaluator.scorer
    report.plot_curves(
        os.path.join(cfg.out, "metrics.csv"),
        os.path.join(cfg.out, "scores.csv"),
        os.path.join(cfg.out, "curves.png"),
        sc.real_score if sc else None,
        sc.real_fd if sc else None,
        cfg.ada_target if cfg.augment == "ada" else None,
    )
    results["train_s"], results["train_cpu_s"] = t_train, cpu_train
    results["wall_train_s"] = time.perf_counter() - t_start
    say(
        f"training done: step {trainer.step}; {t_train:.1f} s in training steps "
        f"({trainer.step - (resume_step or 0)} steps this session; {cpu_train:.1f} s of CPU time, {threads} thread(s)), "
        f"{results['wall_train_s']:.1f} s since start (set-up and evaluations included)"
    )

    if cfg.timing:
        from .timing import timing_table

        table, rows = timing_table(trainer, cfg.timing_reps, cfg.compile)
        with open(os.path.join(cfg.out, "timing.md"), "w") as f:
            f.write(table)
        say("\n" + table)
        results["timing"] = rows
    txt = evaluator.summary(report.read_csv(os.path.join(cfg.out, "scores.csv"))) if evaluator.active else None
    if txt:
        txt += (
            f"training: {t_train:.1f} s wall, {cpu_train:.1f} s process CPU time ({threads} thread(s)) in "
            f"{trainer.step - (resume_step or 0)} training steps this session\n"
        )
        with open(os.path.join(cfg.out, "scores.txt"), "w") as f:
            f.write(txt)
        say(txt)
    results["wall_s"] = time.perf_counter() - t_start
    say(
        f"outputs in {cfg.out}: samples.png, samples_<step>.png, curves.png, metrics.csv, scores.csv, checkpoint.pt"
        f"{', timing.md' if cfg.timing else ''}; wall time {results['wall_s']:.1f} s"
    )
    return results


def _count(m) -> str:
    n = sum(p.numel() for p in m.parameters())
    return f"{n / 1e3:.0f}k"
