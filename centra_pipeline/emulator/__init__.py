"""A local Centra emulator: Order API, Shop API and signed webhooks over a synthetic store.

    from centra_pipeline.emulator import Emulator, EmulatorConfig

    with Emulator(EmulatorConfig(orders=500, seed=7, now="2026-01-15 12:00:00")) as emu:
        ...  # emu.order_api_url, emu.order_api_key, emu.tick(...), emu.store

See docs/emulator.md for every behaviour the Centra docs leave open and the option that
switches it.
"""

from .config import EmulatorConfig, PluginSettings
from .emulator import Emulator
from .store import TickError

__all__ = ["Emulator", "EmulatorConfig", "PluginSettings", "TickError"]
