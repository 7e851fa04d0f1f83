"""A local Centra emulator: Order API, Shop API and signed webhooks over a synthetic store.

    from centra_pipeline.emulator import Emulator, EmulatorConfig

    with Emulator(EmulatorConfig(orders=500, seed=7, now="2026-01-15 12:00:00")) as emu:
        ...  # emu.order_api_url, emu.order_api_key, emu.tick(...), emu.store

See docs/emulator.md for every behaviour the Centra docs leave open and the option that
switches it.

Modules, each importing only from those listed before it:
- foundations: `clock` (store-local time), `config` (options), `rand` (counter-based
  randomness), `money` (cents), `jsonenc` and `responses` (what goes on the wire);
- the store's data: `markets` and `assortment` (declarative data), `products`, `catalog`,
  `customers`, `orders`, `returns`; `ticks` (how the store changes); `catalog_render` and
  `order_render` (the JSON the APIs print); `store` (all of it behind one lock, and queries);
- serving it: `api_access` (key, route, plugin allow-list), `order_api`, `shop_api`,
  `faults`, `request_log` (when requests arrived), `admin_api`, `app` (routing), `server`
  (HTTP), `webhooks` (outbound);
- `emulator` (`Emulator`, the one object that wires it all), `fleet` (`Fleet`: several
  emulators on one server, each under `/stores/<name>`), then `cli_options` and `cli` (the
  `centra-pipeline emulator` command).
"""

from .config import EmulatorConfig, PluginSettings
from .emulator import Emulator
from .fleet import Fleet, fleet_configs, store_secret_env, stores_file_text
from .ticks import TickError

__all__ = [
    "Emulator",
    "EmulatorConfig",
    "Fleet",
    "PluginSettings",
    "TickError",
    "fleet_configs",
    "store_secret_env",
    "stores_file_text",
]
