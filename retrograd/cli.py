"""The `retrograd` command line: train, evaluate and predict.

    retrograd train                      # an MLP on scikit-learn's digits, >= 95% test accuracy
    retrograd train --model cnn          # a small CNN on the digits, >= 97% test accuracy
    retrograd train --model cnn --dataset fashion-mnist --epochs 3 --batch-size 128
    retrograd train --dataset moons --hidden 32,32 --activation tanh --epochs 50
    retrograd evaluate runs/digits-mlp/checkpoint.safetensors
    retrograd predict runs/digits-mlp/checkpoint.safetensors --n 8

This is the only module that parses arguments or prints progress.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

DATASETS = ("digits", "iris", "xor", "moons", "circles", "spirals", "blobs", "fashion-mnist")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "silu", "elu", "leaky_relu")
MODELS = ("mlp", "cnn")
IMAGE_DATASETS = ("digits", "fashion-mnist")  # the datasets --model cnn trains on


# -- building blocks -------------------------------------------------------------------------------
def load_dataset(name: str, seed: int, root: str | None = None, images: bool = False):
    """(train, test) TensorDatasets and (in_features, n_classes) for a dataset name; with
    `images` the digits and Fashion-MNIST samples keep their (1, H, W) shape (for a CNN; the
    digits' pixels are then standardised with the training statistics)."""
    from retrograd.data import datasets

    if name == "digits":
        train, test = datasets.load_digits(seed=seed, flatten=not images, standardize=images)
    elif name == "iris":
        train, test = datasets.load_iris(seed=seed)
    elif name == "fashion-mnist":
        train = datasets.FashionMNIST(root=root, train=True, flatten=not images)
        test = datasets.FashionMNIST(root=root, train=False, flatten=not images)
        train, test = train.as_tensor_dataset(), test.as_tensor_dataset()
    else:
        maker = {
            "xor": datasets.xor,
            "moons": datasets.two_moons,
            "circles": datasets.circles,
            "spirals": datasets.spirals,
            "blobs": datasets.gaussian_blobs,
        }[name]
        full = maker(n_samples=1000 if name != "xor" else 400, seed=seed)
        from retrograd.backend import Generator
        from retrograd.data import random_split

        train, test = random_split(full, [0.8, 0.2], generator=Generator().manual_seed(seed))
    x0, _ = train[0]
    in_features = int(x0.numel())
    n_classes = max(_max_label(train), _max_label(test)) + 1
    return train, test, in_features, n_classes


def _max_label(dataset) -> int:
    """The largest class index, from one batch read of the whole dataset."""
    _, labels = dataset.get_batch(list(range(len(dataset))))
    return int(labels.data.max())


def build_mlp(in_features: int, hidden: list, out_features: int, activation: str):
    """Linear layers of the given widths with an activation between them."""
    from retrograd import nn

    acts = {
        "relu": nn.ReLU,
        "tanh": nn.Tanh,
        "sigmoid": nn.Sigmoid,
        "gelu": nn.GELU,
        "silu": nn.SiLU,
        "elu": nn.ELU,
        "leaky_relu": nn.LeakyReLU,
    }
    layers = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), acts[activation]()]
        width = h
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


def build_model(config: dict):
    """The network a run's config describes: an MLP, or the CNN of retrograd.models."""
    if config["model"] == "cnn":
        from retrograd.models import cnn

        return cnn(
            config["in_channels"],
            config["out_features"],
            config["image_size"],
            batch_norm=config["batch_norm"],
        )
    return build_mlp(
        config["in_features"], config["hidden"], config["out_features"], config["activation"]
    )


def build_optimizer(name: str, params, lr: float, weight_decay: float = 0.0):
    from retrograd import optim

    if name == "sgd":
        return optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if name == "momentum":
        return optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "nesterov":
        return optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    if name == "adam":
        return optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return optim.AdamW(params, lr=lr, weight_decay=weight_decay or 1e-2)
    if name == "rmsprop":
        return optim.RMSprop(params, lr=lr, weight_decay=weight_decay)
    return optim.Adagrad(params, lr=lr, weight_decay=weight_decay)


class ProgressPrinter:
    """Per-epoch progress: a tqdm bar on a terminal, plain lines otherwise."""

    def __init__(self, epochs: int, steps_per_epoch: int, stream=None) -> None:
        self.epochs, self.steps = epochs, steps_per_epoch
        self.stream = stream or sys.stdout
        self.bar = None
        self.use_tqdm = self.stream.isatty()
        if self.use_tqdm:
            try:
                import tqdm  # noqa: F401
            except ImportError:
                self.use_tqdm = False

    def on_train_begin(self, trainer) -> None:
        pass

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        if self.use_tqdm:
            from tqdm import tqdm

            self.bar = tqdm(
                total=self.steps, desc=f"epoch {epoch}/{self.epochs}", leave=False, file=self.stream
            )

    def on_batch_end(self, trainer, batch: int, logs: dict) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{logs['loss']:.4f}")

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        parts = [f"epoch {epoch:3d}/{self.epochs}", f"loss {logs['loss']:.4f}"]
        for key in ("acc", "val_loss", "val_acc"):
            if logs.get(key) is not None:
                parts.append(f"{key} {logs[key]:.4f}")
        parts.append(f"{logs['time']:.2f}s")
        print("  ".join(parts), file=self.stream, flush=True)

    def on_train_end(self, trainer) -> None:
        pass


# -- commands --------------------------------------------------------------------------------------
def cmd_train(args) -> int:
    import retrograd as rg
    from retrograd.data import DataLoader
    from retrograd.nn import functional as F
    from retrograd.train import (
        CurvePlotter,
        EarlyStopping,
        HistoryWriter,
        ModelCheckpoint,
        Trainer,
    )

    rg.manual_seed(args.seed)
    is_cnn = args.model == "cnn"
    if is_cnn and args.dataset not in IMAGE_DATASETS:
        print(
            f"error: --model cnn needs an image dataset ({', '.join(IMAGE_DATASETS)}), "
            f"not {args.dataset}",
            file=sys.stderr,
        )
        return 2
    train, test, in_features, n_classes = load_dataset(
        args.dataset, args.seed, args.data_root, images=is_cnn
    )
    hidden = [int(h) for h in args.hidden.split(",") if h]
    config = {
        "dataset": args.dataset,
        "model": args.model,
        "in_features": in_features,
        "hidden": hidden,
        "out_features": n_classes,
        "activation": args.activation,
    }
    if is_cnn:
        shape = tuple(train[0][0].shape)  # (C, H, W)
        config.update(in_channels=shape[0], image_size=shape[-1], batch_norm=True)
    model = build_model(config)
    optimizer = build_optimizer(args.optimizer, model.parameters(), args.lr, args.weight_decay)
    loader_gen = rg.Generator().manual_seed(args.seed)
    val_loader = None
    if args.val_split > 0:
        from retrograd.data import random_split

        n_val = max(1, int(round(len(train) * args.val_split)))
        train, val = random_split(
            train, [len(train) - n_val, n_val], generator=rg.Generator().manual_seed(args.seed)
        )
        val_loader = DataLoader(val, batch_size=512)
    train_loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, generator=loader_gen)
    test_loader = DataLoader(test, batch_size=512)
    name = args.name or f"{args.dataset}-{args.model}"
    run_dir = os.path.join(args.out, name)
    os.makedirs(run_dir, exist_ok=True)
    checkpoint = os.path.join(run_dir, "checkpoint.safetensors")
    callbacks = [
        ProgressPrinter(args.epochs, len(train_loader)),
        HistoryWriter(run_dir),
        ModelCheckpoint(
            checkpoint,
            os.path.join(run_dir, "best.safetensors"),
            monitor="val_acc" if args.val_split > 0 else "acc",
        ),
        CurvePlotter(run_dir),
    ]
    if args.patience:
        monitor = "val_loss" if args.val_split > 0 else "loss"
        callbacks.insert(
            1, EarlyStopping(monitor, patience=args.patience, restore_best_weights=True)
        )
    monitor_cb = None
    if args.diagnose:
        from retrograd.diagnostics import GradientMonitorCallback

        # appended last: a resumed checkpoint hands callback states out by position
        monitor_cb = GradientMonitorCallback(run_dir, every=args.diagnose_every)
        callbacks.append(monitor_cb)
    trainer = Trainer(
        model, optimizer, F.cross_entropy, callbacks=callbacks, clip_grad_norm=args.clip
    )
    trainer.config = {
        **config,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "val_split": args.val_split,
    }
    if args.resume:
        if not os.path.exists(checkpoint):
            print(f"error: nothing to resume: {checkpoint} does not exist", file=sys.stderr)
            return 2
        trainer.load_checkpoint(checkpoint, loaders=[train_loader])
        print(f"resumed from {checkpoint} after epoch {trainer.epoch}")
    n_params = sum(p.numel() for p in model.parameters())
    if is_cnn:
        side = config["image_size"]
        what = f"CNN {config['in_channels']}x{side}x{side} -> {n_classes} ({n_params} parameters)"
    else:
        what = (
            f"MLP {in_features}-{'-'.join(map(str, hidden))}-{n_classes} ({args.activation}, "
            f"{n_params} parameters)"
        )
    print(
        f"training {name}: {len(train)} train / {len(val_loader.dataset) if val_loader else 0} "
        f"validation / {len(test)} test samples, {what}, {args.optimizer} lr={args.lr}, "
        f"batch {args.batch_size}, {args.epochs} epochs, seed {args.seed}"
    )
    start = time.perf_counter()
    trainer.fit(train_loader, val_loader, epochs=args.epochs)
    elapsed = time.perf_counter() - start
    final = trainer.evaluate(test_loader)
    summary = {
        "run": run_dir,
        "epochs": trainer.epoch,
        "test_loss": final["loss"],
        "test_acc": final["acc"],
        "train_seconds": round(elapsed, 3),
    }
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(
        f"done: test accuracy {final['acc'] * 100:.2f}%  test loss {final['loss']:.4f}  "
        f"{trainer.epoch} epochs in {elapsed:.1f}s\n"
        f"wrote {run_dir}/: checkpoint.safetensors, best.safetensors, history.csv, "
        "history.json, curves.png, summary.json"
    )
    if monitor_cb is not None and monitor_cb.monitor is not None and monitor_cb.monitor.steps:
        monitor = monitor_cb.monitor
        findings = monitor.findings()
        verdict = (
            "; ".join(f"{f.title.lower()} at `{f.layer}`" for f in findings)
            if findings
            else "no vanishing or exploding gradients, dead ReLUs or saturation"
        )
        print(
            f"gradient flow ({len(monitor.steps)} recorded steps): {verdict}\n"
            f"wrote {run_dir}/: gradient_report.md, gradient_stats.json, gradient_flow.png"
        )
    return 0


def _load_model(path):
    from retrograd.train import load_checkpoint

    extra = load_checkpoint(path, restore_rng=False)
    config = extra.get("config") or {}
    if config.get("model") not in MODELS:
        raise SystemExit(f"error: {path} has no model description (not written by retrograd train)")
    model = build_model(config)
    model.load_state_dict(extra["_states"]["model"])
    model.eval()
    return model, config


def cmd_evaluate(args) -> int:
    from retrograd.data import DataLoader
    from retrograd.nn import functional as F
    from retrograd.train import Trainer

    model, config = _load_model(args.checkpoint)
    images = config["model"] == "cnn"
    _, test, _, _ = load_dataset(config["dataset"], config["seed"], args.data_root, images)
    trainer = Trainer(model, None, F.cross_entropy)
    result = trainer.evaluate(DataLoader(test, batch_size=512))
    print(
        f"{args.checkpoint}: {config['dataset']} test accuracy {result['acc'] * 100:.2f}%  "
        f"loss {result['loss']:.4f}  ({len(test)} samples)"
    )
    return 0


def cmd_predict(args) -> int:
    import retrograd as rg

    model, config = _load_model(args.checkpoint)
    images = config["model"] == "cnn"
    _, test, _, _ = load_dataset(config["dataset"], config["seed"], args.data_root, images)
    n = min(args.n, len(test))
    xs = rg.stack([test[i][0] for i in range(n)])
    with rg.no_grad():
        probs = rg.softmax(model(xs if images else xs.reshape(n, -1)), dim=-1)
    print(f"{'sample':>6s}  {'label':>5s}  {'predicted':>9s}  {'confidence':>10s}")
    for i in range(n):
        label = int(test[i][1].item())
        pred = int(probs[i].argmax().item())
        print(f"{i:6d}  {label:5d}  {pred:9d}  {probs[i, pred].item():10.3f}")
    return 0


def _floats(text: str) -> list:
    return [float(v) for v in text.split(",") if v.strip()]


def _variables(items) -> dict:
    """name=value or name=v1,v2,... pairs for `retrograd explain --expr`."""
    values = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--var expects name=value, got {item!r}")
        numbers = _floats(value)
        values[name.strip()] = numbers[0] if len(numbers) == 1 else numbers
    return values


def cmd_explain(args) -> int:
    from pathlib import Path

    from retrograd.diagnostics import draw_graph, explain, expression, network, textbook_network

    try:
        if args.expr is not None:
            example = expression(args.expr, _variables(args.var), lr=args.lr)
        elif args.layers is not None:
            example = network(
                [int(s) for s in args.layers.split(",")],
                _floats(args.input),
                _floats(args.target),
                activation=args.activation,
                lr=0.5 if args.lr is None else args.lr,
                seed=args.seed,
            )
        else:
            example = textbook_network()
            if args.lr is not None:
                example.lr = args.lr
    except ValueError as e:
        print(f"retrograd explain: {e}", file=sys.stderr)
        return 2
    result = explain(example.loss, params=example.params, lr=example.lr, names=example.names)
    fmt = args.format
    if fmt is None:
        suffix = Path(args.out).suffix.lower() if args.out else ""
        fmt = {".md": "markdown", ".html": "html", ".htm": "html"}.get(suffix, "text")
    rendered = {"text": result.to_text, "markdown": result.to_markdown, "html": result.to_html}
    page = rendered[fmt]()
    if args.out:
        Path(args.out).write_text(page, encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        print(page, end="")
    if args.graph:
        path = Path(args.graph)
        graph = draw_graph(example.loss, params=example.params)
        try:
            graph.save(path) if path.suffix.lower() == ".dot" else graph.render(path)
        except (RuntimeError, ValueError) as e:  # no Graphviz, or an unknown image format
            print(f"retrograd explain: {e}", file=sys.stderr)
            return 1
        print(f"wrote {path}")
    return 0


def cmd_demo_vanishing(args) -> int:
    from retrograd.diagnostics import vanishing

    print(
        f"training a {args.depth}-layer MLP (width {args.width}) four ways on two moons, "
        f"{args.steps} SGD steps each"
        + ("" if args.no_bptt else f"; then an RNN and an LSTM over {args.seq_len} time steps"),
        flush=True,
    )
    result = vanishing.run(
        depth=args.depth,
        width=args.width,
        steps=args.steps,
        lr=args.lr,
        seed=args.seed,
        bptt=not args.no_bptt,
        seq_len=args.seq_len,
    )
    print(result.table(), end="")
    result.plot(args.out)
    print(f"wrote {args.out}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result.to_dict(), f, indent=1)
        print(f"wrote {args.json}")
    return 0


def cmd_saliency(args) -> int:
    from retrograd.interpret import METHODS, digits_saliency

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        print(
            f"retrograd saliency: unknown method(s) {unknown}; choose from {', '.join(METHODS)}",
            file=sys.stderr,
        )
        return 2
    checkpoint = None if args.checkpoint.lower() == "none" else args.checkpoint
    try:
        result = digits_saliency(
            args.out,
            n=args.n,
            methods=methods,
            epochs=args.epochs,
            seed=args.seed,
            checkpoint=checkpoint,
            retrain=args.retrain,
        )
    except ImportError as e:  # scikit-learn (digits) or matplotlib missing
        print(f"retrograd saliency: {e}", file=sys.stderr)
        return 2
    how = f"trained for {result.epochs} epochs" if result.trained else "loaded"
    where = f" ({result.checkpoint})" if result.checkpoint else ""
    print(
        f"digits CNN {how}{where}: test accuracy {result.accuracy * 100:.2f}%\n"
        f"wrote {args.out}: {min(args.n, len(result.test))} test digits with "
        f"{', '.join(methods)}"
    )
    return 0


def _rule_line(result) -> str:
    cosines = " / ".join(f"{c:.2f}" for c in result.layer_cosines)
    reached = "-" if result.steps_to_target is None else result.steps_to_target
    return (
        f"  {result.dataset:13s} {result.rule:26s} test acc {100 * result.accuracy:5.1f}%  "
        f"steps to loss<={result.target_loss:g}: {reached!s:>4}  "
        f"{result.ms_per_step:6.2f} ms/step  cosine vs backprop: {cosines}"
    )


def cmd_compare_rules(args) -> int:
    from retrograd.rules import compare_rules

    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    if args.fashion_mnist and "fashion-mnist" not in datasets:
        datasets.append("fashion-mnist")
    rules = [r.strip() for r in args.rules.split(",") if r.strip()] if args.rules else None
    hidden = [int(h) for h in args.hidden.split(",") if h]
    print(
        f"comparing learning rules on {', '.join(datasets)}: MLP hidden "
        f"{'-'.join(map(str, hidden))} ({args.activation}), batch {args.batch_size}, "
        f"seed {args.seed}",
        flush=True,
    )
    try:
        result = compare_rules(
            datasets=datasets,
            rules=rules,
            steps=args.steps,
            hidden=hidden,
            activation=args.activation,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            out_dir=args.out,
            data_root=args.data_root,
            on_result=lambda r: print(_rule_line(r), flush=True),
        )
    except ValueError as e:
        print(f"retrograd compare-rules: {e}", file=sys.stderr)
        return 2
    print()
    print(result.table())
    print()
    print(result.caption())
    for name, why in result.skipped.items():
        print(f"skipped {name}: {why}")
    paths = result.paths
    print(f"wrote {paths['table']}, {paths['json']}, {paths['figure']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retrograd", description="Backpropagation made real, fast and visible."
    )
    sub = parser.add_subparsers(dest="command")
    t = sub.add_parser(
        "train", help="train an MLP or a CNN (default: an MLP on digits, >= 95%% test accuracy)"
    )
    t.add_argument("--dataset", choices=DATASETS, default="digits")
    t.add_argument(
        "--model",
        choices=MODELS,
        default="mlp",
        help="mlp, or cnn: two conv + BatchNorm + max-pool blocks (digits, fashion-mnist)",
    )
    t.add_argument("--hidden", default="128,64", help="hidden widths, comma-separated")
    t.add_argument("--activation", choices=ACTIVATIONS, default="relu")
    t.add_argument("--optimizer", choices=OPTIMIZERS, default="adam")
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--weight-decay", type=float, default=0.0)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--clip", type=float, default=None, help="clip the gradient norm to this")
    t.add_argument("--patience", type=int, default=0, help="early-stopping patience (0: off)")
    t.add_argument(
        "--val-split", type=float, default=0.1, help="fraction of training data held out"
    )
    t.add_argument("--out", default="runs", help="folder for run folders")
    t.add_argument("--name", default=None, help="run folder name (default: <dataset>-<model>)")
    t.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    t.add_argument("--data-root", default=None, help="folder with Fashion-MNIST IDX files")
    t.add_argument(
        "--diagnose",
        action="store_true",
        help="monitor gradient flow (per-layer norms, update ratios, dead ReLUs, saturation) "
        "and write gradient_report.md, gradient_stats.json and gradient_flow.png to the run folder",
    )
    t.add_argument(
        "--diagnose-every", type=int, default=1, metavar="K", help="with --diagnose: one batch in K"
    )
    t.set_defaults(func=cmd_train)
    e = sub.add_parser("evaluate", help="test accuracy of a checkpoint")
    e.add_argument("checkpoint")
    e.add_argument("--data-root", default=None)
    e.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("predict", help="predictions of a checkpoint on test samples")
    p.add_argument("checkpoint")
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--data-root", default=None)
    p.set_defaults(func=cmd_predict)
    x = sub.add_parser(
        "explain",
        help="a backward pass, step by step (default: the textbook 2-2-2 sigmoid network)",
        description="Explain backpropagation with the engine's own numbers: the forward pass "
        "node by node, the loss, each node's local derivative and chain-rule product, where "
        "gradients from several paths are summed, and each parameter's update.",
    )
    x.add_argument(
        "--format",
        choices=("text", "markdown", "html"),
        default=None,
        help="rendering (default: from --out's suffix, else text)",
    )
    x.add_argument("--out", default=None, help="write to this file instead of the terminal")
    x.add_argument(
        "--expr", default=None, help='an expression, e.g. "x*y + exp(x)" (with --var x=2 --var y=3)'
    )
    x.add_argument(
        "--var",
        action="append",
        metavar="NAME=VALUE",
        help="a variable of --expr: a number or comma-separated numbers",
    )
    x.add_argument(
        "--layers",
        default=None,
        help="units per layer, inputs first, e.g. 2,3,2 (random weights, --seed)",
    )
    x.add_argument("--input", default="0.05,0.10", help="input values, comma-separated")
    x.add_argument("--target", default="0.01,0.99", help="target values, comma-separated")
    x.add_argument(
        "--activation", choices=("sigmoid", "tanh", "relu", "identity"), default="sigmoid"
    )
    x.add_argument("--lr", type=float, default=None, help="learning rate (textbook: 0.5)")
    x.add_argument("--seed", type=int, default=0)
    x.add_argument(
        "--graph",
        default=None,
        help="also draw the graph: .dot (no dependency) or .svg/.png (Graphviz)",
    )
    x.set_defaults(func=cmd_explain)
    r = sub.add_parser(
        "compare-rules",
        help="train one network with each learning rule (backprop, feedback alignment, "
        "predictive coding, Forward-Forward, ...) and compare them",
        description="Train the same MLP on the same data and budget with each learning rule "
        "and write a table (test accuracy, steps to a target loss, time per step, per-layer "
        "cosine similarity of each rule's update to backprop's gradient) and a figure of "
        "learning curves.",
    )
    r.add_argument(
        "--datasets",
        default="xor,moons,digits",
        help="comma-separated, from xor, moons, digits, fashion-mnist (default: xor,moons,digits)",
    )
    r.add_argument(
        "--fashion-mnist",
        action="store_true",
        help="also Fashion-MNIST (slow; skipped when its files are absent)",
    )
    r.add_argument(
        "--rules",
        default=None,
        help="comma-separated subset of backprop,fa,dfa,pc,hebbian,forward-gradient,ff "
        "(default: all)",
    )
    r.add_argument(
        "--steps",
        type=int,
        default=None,
        help="training steps per dataset (default: xor 300, moons 500, digits 800, "
        "fashion-mnist 1500)",
    )
    r.add_argument("--hidden", default="64,64", help="hidden widths, comma-separated")
    r.add_argument("--activation", choices=ACTIVATIONS, default="tanh")
    r.add_argument("--batch-size", type=int, default=64)
    r.add_argument("--lr", type=float, default=None, help="Adam's learning rate (default 1e-2)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", default="runs/compare-rules", help="folder for the table and figure")
    r.add_argument("--data-root", default=None, help="folder with Fashion-MNIST IDX files")
    r.set_defaults(func=cmd_compare_rules)
    from retrograd.bench import runner as bench

    b = sub.add_parser("bench", help="retrograd next to PyTorch eager on workloads W1-W6")
    bench.add_arguments(b)
    b.set_defaults(func=bench.run)
    d = sub.add_parser("demo", help="demonstrations (vanishing: gradient flow in deep networks)")
    demos = d.add_subparsers(dest="demo", required=True)
    v = demos.add_parser(
        "vanishing",
        help="a deep network trained four ways, and RNN vs LSTM through time",
        description="Train the same deep MLP four ways (sigmoid with naive init, ReLU with He "
        "init, plus LayerNorm, plus residual connections) on the same data for the same "
        "budget, then a vanilla RNN and an LSTM; print per-layer and per-time-step gradient "
        "norms and loss numbers, and draw them in one figure.",
    )
    v.add_argument("--depth", type=int, default=20, help="number of hidden layers")
    v.add_argument("--width", type=int, default=32)
    v.add_argument("--steps", type=int, default=300, help="SGD steps per network")
    v.add_argument("--lr", type=float, default=0.005)
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--seq-len", type=int, default=40, help="time steps of the RNN/LSTM task")
    v.add_argument("--no-bptt", action="store_true", help="skip the RNN vs LSTM part")
    v.add_argument("--out", default="vanishing.png", help="the figure (PNG)")
    v.add_argument("--json", default=None, help="also write the numbers as JSON")
    v.set_defaults(func=cmd_demo_vanishing)
    s = sub.add_parser(
        "saliency",
        help="saliency maps of a digits CNN (trained, or loaded from its checkpoint)",
        description="Train a small CNN on scikit-learn's 8x8 digits (or load it from "
        "--checkpoint) and write a PNG grid of test digits with their attribution maps.",
    )
    s.add_argument("--out", default="saliency.png", help="the grid (PNG)")
    s.add_argument("--n", type=int, default=10, help="number of test images (one per class first)")
    s.add_argument(
        "--methods",
        default="saliency,gradient_x_input,smoothgrad,integrated_gradients",
        help="comma-separated: saliency, gradient_x_input, smoothgrad, integrated_gradients",
    )
    s.add_argument("--epochs", type=int, default=10)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--checkpoint",
        default=os.path.join("runs", "digits-cnn", "model.safetensors"),
        help="load the CNN from here if it exists, else train and save it here ('none': don't)",
    )
    s.add_argument("--retrain", action="store_true", help="train even if the checkpoint exists")
    s.set_defaults(func=cmd_saliency)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
