"""Small PNG charts of a site's last two weeks and its forecast with 80 % and 95 % intervals."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on workers; must precede the pyplot import

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def forecast_png(
    site_id: str, history: pd.Series, forecast: pd.DataFrame, timezone: str
) -> bytes:
    """The chart as PNG bytes, times shown in the site's local time."""
    figure, axes = plt.subplots(figsize=(7, 2.4), dpi=72)
    if len(history):
        local = history.index.tz_convert(timezone).tz_localize(None)
        axes.plot(local, history.to_numpy(), color="#333333", linewidth=0.8, label="observed")
    hours = pd.DatetimeIndex(forecast["hour_utc"]).tz_convert(timezone).tz_localize(None)
    axes.fill_between(hours, forecast["lower_95"], forecast["upper_95"], color="#9ecae1",
                      linewidth=0, label="95 %")
    axes.fill_between(hours, forecast["lower_80"], forecast["upper_80"], color="#4292c6",
                      linewidth=0, label="80 %")
    axes.plot(hours, forecast["forecast"], color="#08306b", linewidth=1.0, label="forecast")
    model = forecast["model"].iloc[0] if len(forecast) else ""
    axes.set_title(f"{site_id} ({model}, {timezone})", fontsize=8)
    axes.tick_params(labelsize=7)
    axes.legend(fontsize=6, loc="upper left", ncols=4)
    axes.set_ylim(bottom=0)
    figure.tight_layout()

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def save(png: bytes, folder: Path, site_id: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{site_id}.png"
    path.write_bytes(png)
    return path


def markdown_image(png: bytes, alt: str) -> str:
    """An inline image for Dagster's markdown metadata, which the UI renders."""
    encoded = base64.b64encode(png).decode("ascii")
    return f"![{alt}](data:image/png;base64,{encoded})"
