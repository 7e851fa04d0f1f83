"""Customers: `GET /customers` of the Order API.

Read incrementally with the documented `modified` filter from the cursor (the newest
`modified` read) minus an overlap; refreshed by customer id; nothing stays open, so the
reconciliation's open pass skips them and the full pass compares every customer.
"""

from __future__ import annotations

from centra_pipeline.centra.order_api import OrderApi
from centra_pipeline.streams.model import (
    BIGINT,
    BOOL,
    JSON,
    TEXT,
    TS,
    Stream,
    Table,
    c,
)
from centra_pipeline.sync.plan import read_modified_since

CUSTOMERS = Table(
    name="customers",
    stream="customers",
    description="Customers.",
    source="Order API GET /customers (modified filter) and GET /customers/{id}",
    primary_key=("customer_id",),
    columns=(
        c("customerId", BIGINT, "Customer id", required=True),
        c("email", TEXT, "E-mail", personal=True),
        c("firstName", TEXT, "First name", personal=True),
        c("lastName", TEXT, "Last name", personal=True),
        c("address1", TEXT, "Address line 1", personal=True),
        c("address2", TEXT, "Address line 2", personal=True),
        c("zipCode", TEXT, "Postal code", personal=True),
        c("city", TEXT, "City", personal=True),
        c("state", TEXT, "State", personal=True),
        c("country", TEXT, "Country (ISO 3166-1 alpha-2)"),
        c("phoneNumber", TEXT, "Phone number", personal=True),
        c("newsletter", BOOL, "Subscribed to the newsletter"),
        c("gender", TEXT, "Gender"),
        c("registered", BOOL, "Can sign in"),
        c(
            "consents",
            JSON,
            "Consents: [{key, name, consented, text, language, version, created, modified}]",
        ),
        c("created", TS, "When the customer was created"),
        c("modified", TS, "When the customer was last modified", required=True),
    ),
)


STREAM = Stream(
    name="customers",
    api="order_api",
    description="Customers",
    endpoint="GET /customers",
    tables=(CUSTOMERS,),
    key_field="customerId",
    plan=read_modified_since("modified", OrderApi.iter_customers, cursor_field="modified"),
    read_all=OrderApi.iter_customers,
    lookup=OrderApi.get_customer,
)
