"""Why galaxies are lost between the catalogue and the shards, and the ceiling on losses.

Every lost galaxy gets a failure *code* besides its free-text reason
(``group-{g}-failures.csv`` keeps the text). A galaxy can fail for several
reasons (in several bands); it is counted once, under the first of its codes
in the order of :data:`REASONS`, which follows the stages of the chain.

``python -m photoz cutouts`` writes one summary per group
(``group-{g}-losses.json``); ``python -m photoz shards`` adds them up into
``results/cutouts/losses.json`` and stops, writing nothing, when the lost
fraction exceeds ``cutouts.max_lost_fraction`` (:class:`LossCeilingError`).
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["REASONS", "STAGES", "LossCeilingError", "primary_reason", "group_summary", "combine", "check_ceiling", "read_losses"]

#: code -> (stage, what it means). Order matters: a galaxy is counted under its first code.
REASONS = {
    "no_position": ("catalog", "no valid ra/dec in the catalogue"),
    "no_frame": ("frame_index", "no overlapping frame in the frame index"),
    "frame_unavailable": ("retrieval", "a frame it needs is missing or corrupt at the source"),
    "frame_missing": ("cutouts", "a frame it needs is missing from the group's frames"),
    "frame_corrupt": ("cutouts", "a frame it needs is damaged after retrieval or unreadable"),
    "swarp_failed": ("cutouts", "SWarp failed on it"),
    "no_coverage": ("cutouts", "no frame covers it in some band"),
    "partial_coverage": ("cutouts", "partly off every frame (partial_coverage: drop)"),
    "low_coverage": ("cutouts", "coverage below min_coverage"),
}
STAGES = ("catalog", "frame_index", "retrieval", "cutouts")


class LossCeilingError(RuntimeError):
    """More galaxies were lost than ``cutouts.max_lost_fraction`` allows."""


def primary_reason(codes):
    """The code a galaxy with these failure codes is counted under (the earliest stage's)."""
    order = list(REASONS)
    return min(codes, key=order.index)


def group_summary(group, n_galaxies, n_kept, codes_by_galaxy, bad_frames, n_degraded):
    """The losses of one group (a JSON-ready dict).

    Parameters
    ----------
    codes_by_galaxy : dict specObjID -> set of codes (lost galaxies only)
    bad_frames : list of dict ``{frame, code, reason}`` (frames found unusable)
    n_degraded : int, galaxies kept with fewer frames than listed (``bad_frame: skip_frame``)
    """
    by_reason = {code: 0 for code in REASONS}
    for codes in codes_by_galaxy.values():
        by_reason[primary_reason(codes)] += 1
    return {"group": int(group), "n_galaxies": int(n_galaxies), "n_kept": int(n_kept),
            "n_lost": int(len(codes_by_galaxy)), "lost_by_reason": by_reason,
            "n_degraded": int(n_degraded), "bad_frames": sorted(bad_frames, key=lambda f: f["frame"])}


def read_losses(path):
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: unreadable losses summary ({err})") from None
    for key in ("n_galaxies", "n_kept", "n_lost", "lost_by_reason"):
        if key not in d:
            raise ValueError(f"{path}: losses summary lacks {key!r}")
    unknown = set(d["lost_by_reason"]) - set(REASONS)
    if unknown:
        raise ValueError(f"{path}: unknown loss reasons {sorted(unknown)}")
    return d


def combine(groups, max_lost_fraction):
    """Add up the groups' summaries: totals, per stage, per reason (a JSON-ready dict)."""
    n = sum(g["n_galaxies"] for g in groups)
    kept = sum(g["n_kept"] for g in groups)
    lost = sum(g["n_lost"] for g in groups)
    by_reason = {code: sum(g["lost_by_reason"].get(code, 0) for g in groups) for code in REASONS}
    stages = {s: {"n_lost": 0, "by_reason": {}} for s in STAGES}
    for code, k in by_reason.items():
        stage = REASONS[code][0]
        stages[stage]["by_reason"][code] = k
        stages[stage]["n_lost"] += k
    bad = [f for g in groups for f in g.get("bad_frames", [])]
    return {"n_galaxies": int(n), "n_kept": int(kept), "n_lost": int(lost),
            "lost_fraction": (lost / n) if n else 0.0, "max_lost_fraction": float(max_lost_fraction),
            "stages": stages, "reasons": {c: REASONS[c][1] for c in REASONS},
            "n_degraded": int(sum(g.get("n_degraded", 0) for g in groups)),
            "n_bad_frames": len({f["frame"] for f in bad}),
            "n_groups": len(groups)}


def check_ceiling(summary):
    """Raise :class:`LossCeilingError` when the lost fraction exceeds the ceiling; the message says why."""
    if summary["n_galaxies"] and summary["lost_fraction"] > summary["max_lost_fraction"]:
        why = ", ".join(f"{k} {REASONS[c][1]} ({REASONS[c][0]})"
                        for c, k in sorted(((c, k) for s in summary["stages"].values()
                                            for c, k in s["by_reason"].items() if k), key=lambda t: -t[1]))
        raise LossCeilingError(
            f"{summary['n_lost']} of {summary['n_galaxies']} galaxies lost ({100 * summary['lost_fraction']:.1f}%), "
            f"more than cutouts.max_lost_fraction = {summary['max_lost_fraction']:g}: {why}. "
            "Each lost galaxy and its reason is in results/cutouts/group-*-failures.csv; fix the cause "
            "(e.g. install SWarp, restore the frames) or raise cutouts.max_lost_fraction.")
