"""Per-account performance figures from the ledger: returns, risk, trades, costs."""
from __future__ import annotations

import math

import numpy as np

TRADING_DAYS = 252


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def daily_ratios(start: float, day_ends: list[float]) -> tuple[float, float]:
    """Annualised Sharpe and Sortino of the daily returns (end-of-day equity; the first day against the
    starting cash); NaN with fewer than two days or no dispersion (no downside, for Sortino)."""
    equity = np.array([start] + list(day_ends), dtype=np.float64)
    returns = equity[1:] / equity[:-1] - 1.0
    if len(returns) < 2:
        return math.nan, math.nan
    mean = float(returns.mean())
    sharpe = _ratio(mean, float(returns.std(ddof=1))) * math.sqrt(TRADING_DAYS)
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    return sharpe, _ratio(mean, downside) * math.sqrt(TRADING_DAYS)


def max_drawdown(rows: list[dict]) -> tuple[float, str, str]:
    """Largest peak-to-trough fall of equity (a fraction of the peak) with the peak's and trough's times."""
    worst, peak, peak_time, out = 0.0, -math.inf, "", ("", "")
    for row in rows:
        if row["equity"] > peak:
            peak, peak_time = row["equity"], row["time"]
        fall = (peak - row["equity"]) / peak if peak > 0 else 0.0
        if fall > worst:
            worst, out = fall, (peak_time, row["time"])
    return worst, out[0], out[1]


def account_metrics(name: str, start: float, day_ends: dict, tables: dict) -> dict:
    """The figures of one account from the ledger's `tables` (equity, fills, orders, trades rows) and
    its equity at each session's end."""
    rows = [r for r in tables["equity"] if r["account"] == name]
    trades = [t for t in tables["trades"] if t["account"] == name]
    fills = [f for f in tables["fills"] if f["account"] == name]
    final = rows[-1]["equity"] if rows else start
    sharpe, sortino = daily_ratios(start, [e for _, e in day_ends.get(name, [])])
    drawdown, peak, trough = max_drawdown(rows)
    wins = [t["pnl"] for t in trades if t["pnl"] > 0]
    losses = [t["pnl"] for t in trades if t["pnl"] <= 0]
    mean_equity = float(np.mean([r["equity"] for r in rows])) if rows else start
    return {
        "account": name, "start_equity": start, "final_equity": final, "total_return": final / start - 1.0,
        "sharpe": sharpe, "sortino": sortino, "max_drawdown": drawdown, "max_drawdown_peak": peak,
        "max_drawdown_trough": trough, "trades": len(trades),
        "win_rate": _ratio(len(wins), len(trades)),
        "profit_factor": _ratio(sum(wins), -sum(losses)) if losses else math.nan,
        "exposure": _ratio(sum(1 for r in rows if r["exposed"]), len(rows)),
        "turnover": _ratio(sum(abs(f["qty"] * f["price"]) for f in fills), mean_equity),
        "commissions": sum(f["commission"] for f in fills), "fills": len(fills),
        "orders": sum(1 for o in tables["orders"] if o["account"] == name),
    }
