"""Choropleth of markets per 10,000 inhabitants per Kreis, as PNG bytes."""

from __future__ import annotations

import io

import geopandas as gpd
import matplotlib

matplotlib.use("Agg")  # no display on servers and workers
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def markets_choropleth(regions: gpd.GeoDataFrame, kreis_stats: pd.DataFrame, title: str) -> bytes:
    """Germany in grey, covered Kreise coloured by markets per 10,000 inhabitants.

    The view zooms to the covered Kreise, so a city extract shows its own Kreis readably.
    """
    values = kreis_stats.set_index("ags")["markets_per_10k"]
    shapes = regions[["ags", "name", "geometry"]].copy()
    shapes["value"] = shapes["ags"].map(values)
    covered = shapes[shapes["value"].notna()]

    figure, axes = plt.subplots(figsize=(7, 8), dpi=90)
    shapes.plot(ax=axes, color="#eeeeee", edgecolor="#bbbbbb", linewidth=0.2)
    if not covered.empty:
        covered.plot(
            ax=axes,
            column="value",
            cmap="viridis",
            edgecolor="#555555",
            linewidth=0.3,
            legend=True,
            legend_kwds={"label": "markets per 10,000 inhabitants", "shrink": 0.6},
        )
        if len(covered) < 20:
            minx, miny, maxx, maxy = covered.total_bounds
            pad = max(maxx - minx, maxy - miny) * 0.3 + 0.05
            axes.set_xlim(minx - pad, maxx + pad)
            axes.set_ylim(miny - pad, maxy + pad)
            for _, row in covered.iterrows():
                point = row.geometry.representative_point()
                axes.annotate(f"{row['name']}\n{row['value']:.2f}", (point.x, point.y),
                              ha="center", fontsize=7)
    axes.set_title(title, fontsize=10)
    axes.set_axis_off()

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()
