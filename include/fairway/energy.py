"""Energy used and emissions estimated for a piece of work (a training candidate, a batch month), with CodeCarbon's
offline tracker: no network, the electricity mix of the country in the use-case config (`energy.country_iso_code`).

One tracker per unit of work (`tracked(...)` around it): CodeCarbon's first start in a process probes the hardware
(about 3 s here), later ones reuse the probe. The tracker follows this process only (`tracking_mode="process"`):
candidates trained side by side by mapped tasks do not count each other's work.

What the numbers are is recorded with them (`method`): *measured* when CodeCarbon reads power counters (RAPL,
powermetrics), *estimated* when it has none and takes the CPU model's power by its load (what this machine gives:
no /sys/class/powercap), *not measured* when the tracker failed. A failing tracker never fails the work it wraps;
a disabled one (`energy.enabled: false`) records nothing.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fairway.config import EnergySpec

log = logging.getLogger(__name__)

TOOL = "codecarbon offline"
MEASURED_CPU = ("Intel Rapl", "Powermetrics", "Windows Emi", "Intel Power Gadget")  # CodeCarbon's CPU(...) modes
METRICS = ("energy_kwh", "emissions_kg_co2eq")


@dataclass
class EnergyUse:
    """The energy of one unit of work; filled when its `tracked` block ends."""

    what: str
    country_iso_code: str
    status: str = "disabled"  # measured | estimated | not measured | disabled
    method: str = ""
    energy_kwh: float | None = None
    emissions_kg_co2eq: float | None = None
    seconds: float | None = None

    def metrics(self) -> dict[str, float]:
        """The MLflow metrics `energy_kwh` and `emissions_kg_co2eq` (those that are known)."""
        values = {"energy_kwh": self.energy_kwh, "emissions_kg_co2eq": self.emissions_kg_co2eq}
        return {k: v for k, v in values.items() if v is not None}

    def tags(self) -> dict[str, str]:
        """What the metrics are (tool, status, method, country); nothing when tracking is disabled."""
        if self.status == "disabled":
            return {}
        return {"energy_tool": TOOL, "energy_status": self.status, "energy_method": self.method[:500],
                "energy_country_iso_code": self.country_iso_code}  # fmt: skip

    def summary(self) -> dict[str, Any]:
        """Metrics and tags together, for a run's summary (an empty dict when disabled)."""
        return {**self.metrics(), **self.tags()} if self.status != "disabled" else {}


def _tracker(spec: EnergySpec) -> Any:
    """A CodeCarbon offline tracker of this process (quiet: errors only)."""
    from codecarbon import OfflineEmissionsTracker

    logging.getLogger("codecarbon").setLevel(logging.ERROR)  # its start-up notes are not ours to print
    # output_methods=[]: nothing written anywhere (save_to_file=False, deprecated in CodeCarbon 3.3)
    return OfflineEmissionsTracker(country_iso_code=spec.country_iso_code, output_methods=[], log_level="error",
                                   tracking_mode="process")  # fmt: skip


def _method(tracker: Any, data: Any) -> tuple[str, str]:
    """(status, method) from the hardware CodeCarbon used: power counters, or the CPU model and its load."""
    hardware = [str(h) for h in (getattr(tracker, "_conf", {}) or {}).get("hardware", [])]
    cpu = next((h[4:-1] for h in hardware if h.startswith("CPU(")), "")
    model = getattr(data, "cpu_model", "") or "unknown CPU"
    if cpu in MEASURED_CPU:
        return "measured", f"{TOOL}: CPU power measured ({cpu}), RAM estimated; this process's share"
    how = f"its load ({cpu.lower()})" if cpu else "a constant power"
    return "estimated", (f"{TOOL}: estimated from the CPU model ({model}) and {how}, no power counters readable; "
                         "RAM estimated; this process's share")  # fmt: skip


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _start(spec: EnergySpec, use: EnergyUse) -> Any:
    try:
        tracker = _tracker(spec)
        tracker.start()
    except Exception as error:  # noqa: BLE001 - energy is evidence about the work, never a reason to stop it
        use.status, use.method = "not measured", f"{TOOL}: the tracker did not start ({type(error).__name__}: {error})"
        log.warning("energy of %s not measured: %s", use.what, use.method)
        return None
    return tracker


def _stop(tracker: Any, use: EnergyUse, started: float) -> None:
    use.seconds = round(time.perf_counter() - started, 3)
    try:
        tracker.stop()
        data = tracker.final_emissions_data
    except Exception as error:  # noqa: BLE001
        use.status, use.method = "not measured", f"{TOOL}: the tracker did not stop ({type(error).__name__}: {error})"
        log.warning("energy of %s not measured: %s", use.what, use.method)
        return
    use.energy_kwh = _finite(getattr(data, "energy_consumed", None))
    use.status, use.method = _method(tracker, data)
    if use.energy_kwh is None:
        use.status, use.method = "not measured", f"{TOOL}: no energy reported"
    elif getattr(data, "country_name", None):  # an unknown country: CodeCarbon logs an error and falls back
        use.emissions_kg_co2eq = _finite(getattr(data, "emissions", None))
    else:
        use.method += f"; CodeCarbon knows no electricity mix of {use.country_iso_code}: emissions not estimated"


@contextlib.contextmanager
def tracked(spec: EnergySpec, what: str) -> Iterator[EnergyUse]:
    """Track the energy of the block; the yielded EnergyUse is filled when the block ends (also when it raises:
    the block's exception goes on, the tracker's own never does)."""
    use = EnergyUse(what, spec.country_iso_code)
    if not spec.enabled:
        yield use
        return
    started = time.perf_counter()
    tracker = _start(spec, use)
    try:
        yield use
    finally:
        if tracker is not None:
            _stop(tracker, use, started)
