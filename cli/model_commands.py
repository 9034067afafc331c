"""``quantdesk model``: purged walk-forward training with a report, saved models, predictions."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
import typer

from quantdesk.cli._output import echo_markdown, parse_symbols, write_frame
from quantdesk.cli.data_commands import (
    SOURCE_HELP,
    _as_of_opt,
    _column_opt,
    _load,
    _start_opt,
    _symbols_opt,
)
from quantdesk.quant_core.errors import QuantdeskRuntimeError

if TYPE_CHECKING:
    import polars as pl

__all__ = ["model_app"]

model_app = typer.Typer(
    help="Train models with purged walk-forward CV and predict with saved models.",
    no_args_is_help=True,
)

_CS_PREFIXES = {"cs_rank_": "rank", "cs_z_": "zscore"}


@model_app.command("train")
def train_command(
    source: Path = typer.Argument(..., help=SOURCE_HELP, exists=True),
    symbols: str | None = _symbols_opt,
    start: datetime | None = _start_opt,
    as_of: datetime | None = _as_of_opt,
    column: list[str] | None = _column_opt,
    signal: str = typer.Option("mom_252_21", help="Signal studied on its own as the baseline."),
    features: str | None = typer.Option(
        None, help="Comma-separated model features (default: the standard set)."
    ),
    feature_set: str = typer.Option("rank", help="rank | zscore | raw (what the model sees)."),
    label: str = typer.Option(
        "forward_return", help="forward_return | binary | ternary | triple_barrier."
    ),
    horizon: int = typer.Option(5, min=1, help="Label horizon in sessions."),
    model: str = typer.Option("lightgbm", help="lightgbm | linear."),
    folds: int = typer.Option(5, min=2, help="Walk-forward test folds."),
    scheme: str = typer.Option("expanding", help="expanding | rolling."),
    embargo: int | None = typer.Option(None, min=0, help="Embargo sessions (default: horizon)."),
    seed: int = typer.Option(7, min=0, help="Model seed."),
    save: Path | None = typer.Option(None, help="Folder to save the model refit on all data."),
    oof: Path | None = typer.Option(None, help="Write out-of-fold predictions (.parquet/.csv)."),
) -> None:
    """Run a purged walk-forward study of a model and a signal; print the training report."""
    from quantdesk.quant_core.study import StudyConfig, run_walk_forward_study

    config_args: dict[str, object] = {
        "signal": signal,
        "feature_set": feature_set,
        "label": label,
        "horizon": horizon,
        "model": model,
        "n_splits": folds,
        "scheme": scheme,
        "embargo": embargo,
        "seed": seed,
        "as_of": as_of.date() if as_of else None,
    }
    if features:
        config_args["features"] = tuple(parse_symbols(features) or ())
    config = _study_config(StudyConfig, config_args)
    prices = _load(source, symbols, start, as_of, column)
    result = run_walk_forward_study(prices, config)
    echo_markdown(result.to_markdown(title=f"Walk-forward study: {source.name}"))
    if oof is not None:
        write_frame(result.training.oof, oof)
        click.echo(f"\nwrote {result.training.oof.height:,} out-of-fold predictions to {oof}")
    if save is not None:
        final = result.training.final_model
        if final is None:
            raise QuantdeskRuntimeError("No final model was refit, so there is nothing to --save.")
        final.save(save)
        click.echo(f"saved the model refit on all {result.dataset.n_rows:,} rows to {save}")


def _study_config(cls: type, args: dict[str, object]) -> object:
    from pydantic import ValidationError

    from quantdesk.quant_core.errors import InputError

    try:
        return cls(**args)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InputError(
            f"Invalid --{field.replace('_', '-')} value {first.get('input')!r}: {first['msg']}.",
            fix="see `quantdesk model train --help` for the accepted values.",
        ) from None


@model_app.command("predict")
def predict_command(
    model_dir: Path = typer.Argument(
        ..., help="Folder written by `model train --save`.", exists=True
    ),
    source: Path = typer.Argument(..., help=SOURCE_HELP, exists=True),
    symbols: str | None = _symbols_opt,
    as_of: datetime | None = _as_of_opt,
    column: list[str] | None = _column_opt,
    all_dates: bool = typer.Option(False, help="Predict every date, not only the last one."),
    out: Path | None = typer.Option(None, help="Write predictions (.parquet/.csv)."),
) -> None:
    """Predict with a saved model on prices up to --as-of (default: the last date only)."""
    import polars as pl

    from quantdesk.quant_core.features import compute_features
    from quantdesk.quant_core.models import QuantModel

    model = QuantModel.load(model_dir)
    prices = _load(source, symbols, None, as_of, column)
    base, kinds = _feature_recipe(model.feature_names_)
    features = compute_features(prices, base, cross_sectional=kinds or None)
    if not all_dates:
        features = features.filter(pl.col("date") == pl.col("date").max())
    preds = model.predict_frame(features)
    if out is not None:
        write_frame(preds, out)
        click.echo(f"wrote {preds.height:,} predictions to {out}")
    else:
        echo_markdown(_predictions_markdown(preds))


def _feature_recipe(names: list[str] | tuple[str, ...]) -> tuple[list[str], tuple[str, ...]]:
    """Recover the base feature names and cross-sectional kinds behind model feature names."""
    base: list[str] = []
    kinds: list[str] = []
    for name in names:
        for prefix, kind in _CS_PREFIXES.items():
            if name.startswith(prefix):
                name = name.removeprefix(prefix)
                if kind not in kinds:
                    kinds.append(kind)
                break
        if name not in base:
            base.append(name)
    return base, tuple(kinds)


def _predictions_markdown(preds: pl.DataFrame) -> str:
    value_cols = [c for c in preds.columns if c not in ("date", "symbol")]
    shown = preds.sort(value_cols[0], descending=True).head(40)
    lines = [
        f"# Predictions ({preds.height:,} rows)",
        "",
        "| " + " | ".join(["date", "symbol", *value_cols]) + " |",
        "|" + "---|" * (2 + len(value_cols)),
    ]
    for row in shown.iter_rows(named=True):
        cells = [str(row["date"]), str(row["symbol"])]
        cells += [f"{row[c]:.5f}" if isinstance(row[c], float) else str(row[c]) for c in value_cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
