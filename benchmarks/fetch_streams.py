"""Child process for the benchmarks: page Centra endpoints with the client alone (no landing,
no merging) and print what was read as JSON. With `--prefetch` the next page is fetched while
the current one is parsed, as the pipeline does."""

from __future__ import annotations

import argparse
import json
import time

from centra_pipeline.centra.http import HttpConfig, prefetch
from centra_pipeline.centra.order_api import OrderApi
from centra_pipeline.centra.shop_api import ShopApi
from centra_pipeline.settings import Settings

STREAMS = ("orders", "returns", "customers", "products", "stock", "catalogue")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stream", action="append", choices=STREAMS)
    parser.add_argument("--prefetch", action="store_true")
    args = parser.parse_args()
    settings = Settings.from_env()
    config = HttpConfig(max_requests_per_second=settings.max_requests_per_second)
    order = OrderApi.connect(
        settings.order_api_url, settings.order_api_key, config=config, page_size=1000
    )
    shop = ShopApi.connect(
        settings.shop_api_url, settings.shop_api_key, config=config, page_size=100
    )
    pages = {
        "orders": order.iter_orders,
        "returns": order.iter_returns,
        "customers": order.iter_customers,
        "products": order.iter_products,
        "stock": order.iter_stock,
        "catalogue": shop.iter_products,
    }
    result = {}
    started = time.perf_counter()
    for stream in args.stream or STREAMS:
        t0 = time.perf_counter()
        iterator = pages[stream]()
        if args.prefetch:
            iterator = prefetch(iterator)
        records = sum(len(page.records) for page in iterator)
        result[stream] = {"records": records, "seconds": round(time.perf_counter() - t0, 3)}
    result["total_seconds"] = round(time.perf_counter() - started, 3)
    result["requests"] = order.session.stats.requests + shop.session.stats.requests
    print(json.dumps(result))


if __name__ == "__main__":
    main()
