"""Plotly figures of a run as plain dicts ({"data": [...], "layout": {...}}), ready for Plotly.newPlot.

Built as dicts, not plotly.graph_objects, so a report of thousands of symbol-days is not slowed by
validation. Times are exchange-local 'YYYY-MM-DD HH:MM' strings. Every trace carries `meta.kind`
(candles, overlay, panel, fills, orders, signals, equity, drawdown) and every shape a `name` (gap,
caught-up, added), so a reader (or a test in a browser) finds them.
"""
from __future__ import annotations

import math

import numpy as np

from common.domain.timeconv import NS_PER_MIN
from services.ctl.rundata import CHART_INTERVALS, DayView, local_time, local_times

OVERLAYS = {"sma", "ema", "wma", "dema", "tema", "trima", "kama", "t3", "bbands", "vwap", "midpoint", "midprice",
            "sar"}
PRICE_SHARE = 0.62


def values(array) -> list:
    """Floats for JSON: NaN/inf -> None."""
    return [None if (v is None or not math.isfinite(v)) else v for v in np.asarray(array, np.float64).tolist()]


def candle_traces(view: DayView) -> list[dict]:
    out = []
    for interval in CHART_INTERVALS:
        bars = view.bars[interval]
        out.append({"type": "candlestick", "name": f"{view.symbol} {interval}", "x": local_times(bars.ts),
                    "open": values(bars.open), "high": values(bars.high), "low": values(bars.low),
                    "close": values(bars.close), "visible": interval == "1m", "yaxis": "y",
                    "meta": {"kind": "candles", "interval": interval, "symbol": view.symbol, "day": view.day}})
    return out


def indicator_traces(view: DayView) -> tuple[list[dict], list[str]]:
    """Overlays on the price axis, one panel (its own y axis) per other indicator; (traces, panel keys)."""
    traces, panels = [], []
    for interval, columns in view.indicators.items():
        x = local_times(columns["ts"])
        for name, column in columns.items():
            if name == "ts":
                continue
            key = name.split(".")[0]
            overlay = key.split("(")[0] in OVERLAYS
            if not overlay and key not in panels:
                panels.append(key)
            axis = "y" if overlay else f"y{panels.index(key) + 2}"
            traces.append({"type": "scatter", "mode": "lines", "name": f"{name} {interval}", "x": x,
                           "y": values(column), "yaxis": axis, "line": {"width": 1},
                           "meta": {"kind": "overlay" if overlay else "panel", "interval": interval, "key": name}})
    return traces, panels


def _price_at(view: DayView, ns: int) -> float | None:
    bars = view.bars["1m"]
    i = int(np.searchsorted(bars.ts, ns, side="right")) - 1
    return float(bars.close[i]) if i >= 0 else None


def marker_traces(view: DayView) -> list[dict]:
    fills = view.fills
    out = [{"type": "scatter", "mode": "markers", "name": "fills", "yaxis": "y",
            "x": [local_time(f["ts_ns"]) for f in fills], "y": [f["price"] for f in fills],
            "text": [f"{f['side']} {abs(f['qty']):g} @ {f['price']:g} (order {f['order_id']}, {f['account']})"
                     for f in fills],
            "marker": {"size": 11, "symbol": ["triangle-up" if f["side"] == "buy" else "triangle-down" for f in fills],
                       "color": ["#1a9850" if f["side"] == "buy" else "#d73027" for f in fills],
                       "line": {"width": 1, "color": "black"}},
            "meta": {"kind": "fills"}}]
    orders = view.orders
    out.append({"type": "scatter", "mode": "markers", "name": "orders", "yaxis": "y",
                "x": [local_time(o["placed_clock_ns"]) for o in orders],
                "y": [o["limit"] or o["stop"] or o["avg_price"] or _price_at(view, o["placed_clock_ns"]) for o in orders],
                "text": [f"{o['side']} {abs(o['qty']):g} {o['type']} #{o['order_id']}: {o['status']} {o['reason'] or ''}"
                         for o in orders],
                "marker": {"size": 7, "symbol": "circle-open", "color": "#444"}, "meta": {"kind": "orders"}})
    sigs = view.signals
    out.append({"type": "scatter", "mode": "markers", "name": "signals", "yaxis": "y",
                "x": [local_time(s["clock_ns"]) for s in sigs], "y": [_price_at(view, s["clock_ns"]) for s in sigs],
                "text": [f"{s['strategy']}: {s['side']} {s['qty']:g} {s['reason']}" for s in sigs],
                "marker": {"size": 9, "symbol": "star", "color": "#7b3294"}, "meta": {"kind": "signals"}})
    return out


def _rect(name: str, x0: int, x1: int, color: str, opacity: float) -> dict:
    return {"type": "rect", "name": name, "xref": "x", "yref": "paper", "x0": local_time(x0), "x1": local_time(x1),
            "y0": 0, "y1": 1, "fillcolor": color, "opacity": opacity, "line": {"width": 0}, "layer": "below"}


def shapes(view: DayView) -> tuple[list[dict], list[dict]]:
    """Gaps (each missing run of regular-hours minutes) shaded; the add time marked and the caught-up
    span before it shaded. (shapes, annotations)"""
    out = [_rect("gap", first, last + NS_PER_MIN, "#888", 0.3) for first, last, _ in view.gaps]
    notes = []
    if view.added_ns is not None:
        out.append(_rect("caught-up", view.open_ns, view.added_ns, "#4575b4", 0.12))
        at = local_time(view.added_ns)
        out.append({"type": "line", "name": "added", "xref": "x", "yref": "paper", "x0": at, "x1": at, "y0": 0,
                    "y1": 1, "line": {"color": "#4575b4", "width": 2, "dash": "dash"}})
        notes.append({"x": at, "y": 1, "xref": "x", "yref": "paper", "text": f"added {at[-5:]}", "showarrow": False,
                      "yanchor": "bottom", "font": {"color": "#4575b4"}})
    return out, notes


def _interval_menu(n_traces: int) -> dict:
    buttons = [{"label": interval, "method": "restyle",
                "args": [{"visible": [i == k for i in range(len(CHART_INTERVALS))]}, list(range(len(CHART_INTERVALS)))]}
               for k, interval in enumerate(CHART_INTERVALS)]
    return {"type": "buttons", "direction": "right", "x": 0, "y": 1.08, "xanchor": "left", "yanchor": "bottom",
            "buttons": buttons, "showactive": True, "active": 0}


def day_figure(view: DayView) -> dict:
    """Candles (1m, with 5m/15m buttons), indicators, markers, gaps and the add time of one symbol-day."""
    ind, panels = indicator_traces(view)
    data = candle_traces(view) + ind + marker_traces(view)
    gap_shapes, notes = shapes(view)
    price_bottom = 1 - PRICE_SHARE if panels else 0
    layout = {"title": {"text": f"{view.symbol} {view.day}"}, "height": 460 + 130 * len(panels),
              "margin": {"l": 60, "r": 20, "t": 70, "b": 40}, "hovermode": "x",
              "xaxis": {"type": "date", "rangeslider": {"visible": False}, "anchor": f"y{len(panels) + 1}" if panels else "y"},
              "yaxis": {"domain": [price_bottom + (0.03 if panels else 0), 1], "title": {"text": "price"}},
              "shapes": gap_shapes, "annotations": notes, "updatemenus": [_interval_menu(len(data))],
              "legend": {"orientation": "h", "y": -0.08}}
    step = price_bottom / max(1, len(panels))
    for i, key in enumerate(panels):
        top = price_bottom - i * step
        layout[f"yaxis{i + 2}"] = {"domain": [max(0, top - step + 0.02), top], "anchor": "x",
                                   "title": {"text": key, "font": {"size": 10}}}
    return {"data": data, "layout": layout}


def equity_figure(account: str, rows: list[dict]) -> dict:
    """Equity and drawdown (from its running peak) of one account, per step."""
    rows = [r for r in rows if r["account"] == account]
    equity = np.array([r["equity"] for r in rows], np.float64)
    peak = np.maximum.accumulate(equity) if len(equity) else equity
    drawdown = np.where(peak > 0, equity / np.where(peak > 0, peak, 1) - 1, 0.0)
    x = [r["time"] for r in rows]
    data = [{"type": "scatter", "mode": "lines", "name": "equity", "x": x, "y": values(equity), "yaxis": "y",
             "meta": {"kind": "equity", "account": account}},
            {"type": "scatter", "mode": "lines", "name": "drawdown", "x": x, "y": values(drawdown), "yaxis": "y2",
             "fill": "tozeroy", "line": {"color": "#d73027"}, "meta": {"kind": "drawdown", "account": account}}]
    layout = {"title": {"text": f"{account}: equity and drawdown"}, "height": 420, "hovermode": "x",
              "margin": {"l": 70, "r": 20, "t": 50, "b": 40},
              "xaxis": {"type": "category", "nticks": 12, "anchor": "y2"},
              "yaxis": {"domain": [0.35, 1], "title": {"text": "equity"}},
              "yaxis2": {"domain": [0, 0.28], "title": {"text": "drawdown"}, "tickformat": ".2%"}}
    return {"data": data, "layout": layout}
