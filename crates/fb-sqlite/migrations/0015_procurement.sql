-- Procurement (issue #7, C2): the parts catalogue, bills of materials, suppliers and their
-- offers, stock per site, and purchase orders with the quotes they were chosen from. Money is
-- integer minor units (cents) of the currency named beside it.

CREATE TABLE procurement_parts (
    sku      TEXT PRIMARY KEY NOT NULL,
    name     TEXT NOT NULL,
    unit     TEXT NOT NULL,
    currency TEXT NOT NULL -- ISO 4217
) STRICT;

-- failure_key: a failure type, or '*' for a line every repair of the machine type needs.
CREATE TABLE procurement_bom_lines (
    machine_type TEXT    NOT NULL,
    failure_key  TEXT    NOT NULL,
    part_sku     TEXT    NOT NULL REFERENCES procurement_parts (sku),
    quantity     INTEGER NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (machine_type, failure_key, part_sku)
) STRICT;

CREATE TABLE procurement_suppliers (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    reliability REAL NOT NULL CHECK (reliability >= 0 AND reliability <= 1),
    currency    TEXT NOT NULL
) STRICT;

CREATE TABLE procurement_offers (
    part_sku         TEXT    NOT NULL REFERENCES procurement_parts (sku),
    supplier_id      TEXT    NOT NULL REFERENCES procurement_suppliers (id),
    unit_price_minor INTEGER NOT NULL CHECK (unit_price_minor > 0),
    lead_time_days   INTEGER NOT NULL CHECK (lead_time_days >= 0),
    max_discount_pct REAL    NOT NULL CHECK (max_discount_pct >= 0 AND max_discount_pct <= 100),
    PRIMARY KEY (part_sku, supplier_id)
) STRICT;

CREATE TABLE procurement_stock (
    site             TEXT    NOT NULL,
    part_sku         TEXT    NOT NULL REFERENCES procurement_parts (sku),
    on_hand          INTEGER NOT NULL CHECK (on_hand >= 0),
    reserved         INTEGER NOT NULL CHECK (reserved >= 0 AND reserved <= on_hand),
    reorder_point    INTEGER NOT NULL CHECK (reorder_point >= 0),
    reorder_quantity INTEGER NOT NULL CHECK (reorder_quantity >= 0),
    PRIMARY KEY (site, part_sku)
) STRICT;

-- What each ticket's repair reserved of a part, once: handling a ticket again reserves nothing
-- more.
CREATE TABLE procurement_reservations (
    ticket_id BLOB    NOT NULL,
    part_sku  TEXT    NOT NULL,
    site      TEXT    NOT NULL,
    quantity  INTEGER NOT NULL CHECK (quantity >= 0),
    PRIMARY KEY (ticket_id, part_sku)
) STRICT;

CREATE TABLE procurement_orders (
    id                    BLOB    PRIMARY KEY NOT NULL, -- UUIDv7: time-ordered
    site                  TEXT    NOT NULL,
    machine_id            TEXT,
    ticket_id             BLOB, -- NULL: a stock reorder
    part_sku              TEXT    NOT NULL,
    quantity              INTEGER NOT NULL CHECK (quantity > 0),
    supplier_id           TEXT    NOT NULL,
    quoted_unit_minor     INTEGER NOT NULL,
    negotiated_unit_minor INTEGER NOT NULL,
    amount_minor          INTEGER NOT NULL,
    savings_minor         INTEGER NOT NULL,
    currency              TEXT    NOT NULL,
    urgency               TEXT    NOT NULL CHECK (urgency IN ('low', 'medium', 'high', 'critical')),
    status                TEXT    NOT NULL CHECK (status IN ('awaiting_approval', 'approved', 'rejected', 'placed', 'received', 'cancelled')),
    approval_id           BLOB,
    decision_id           BLOB,
    quotes                TEXT    NOT NULL, -- JSON array of the quotes considered, best first
    reason                TEXT    NOT NULL,
    created_at            TEXT    NOT NULL,
    updated_at            TEXT    NOT NULL,
    placed_at             TEXT,
    received_at           TEXT
) STRICT;

-- An agent that handles the same ticket twice orders nothing new: one order per ticket and part,
-- and one open stock reorder per site and part, whatever writes them.
CREATE UNIQUE INDEX procurement_orders_ticket_part ON procurement_orders (ticket_id, part_sku)
    WHERE ticket_id IS NOT NULL;
CREATE UNIQUE INDEX procurement_orders_open_reorder ON procurement_orders (site, part_sku)
    WHERE ticket_id IS NULL AND status IN ('awaiting_approval', 'approved', 'placed');
CREATE INDEX procurement_orders_by_site ON procurement_orders (site, id);
