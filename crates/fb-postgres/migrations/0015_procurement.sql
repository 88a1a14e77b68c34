-- Procurement (issue #7, C2): the parts catalogue, bills of materials, suppliers and their
-- offers, stock per site, and purchase orders with the quotes they were chosen from. Money is
-- integer minor units (cents) of the currency named beside it.

CREATE TABLE procurement_parts (
    sku      text PRIMARY KEY,
    name     text NOT NULL,
    unit     text NOT NULL,
    currency text NOT NULL -- ISO 4217
);

-- failure_key: a failure type, or '*' for a line every repair of the machine type needs.
CREATE TABLE procurement_bom_lines (
    machine_type text    NOT NULL,
    failure_key  text    NOT NULL,
    part_sku     text    NOT NULL REFERENCES procurement_parts (sku),
    quantity     bigint  NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (machine_type, failure_key, part_sku)
);

CREATE TABLE procurement_suppliers (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    reliability double precision NOT NULL CHECK (reliability >= 0 AND reliability <= 1),
    currency    text NOT NULL
);

CREATE TABLE procurement_offers (
    part_sku         text    NOT NULL REFERENCES procurement_parts (sku),
    supplier_id      text    NOT NULL REFERENCES procurement_suppliers (id),
    unit_price_minor bigint  NOT NULL CHECK (unit_price_minor > 0),
    lead_time_days   bigint  NOT NULL CHECK (lead_time_days >= 0),
    max_discount_pct double precision NOT NULL CHECK (max_discount_pct >= 0 AND max_discount_pct <= 100),
    PRIMARY KEY (part_sku, supplier_id)
);

CREATE TABLE procurement_stock (
    site             text    NOT NULL,
    part_sku         text    NOT NULL REFERENCES procurement_parts (sku),
    on_hand          bigint  NOT NULL CHECK (on_hand >= 0),
    reserved         bigint  NOT NULL CHECK (reserved >= 0 AND reserved <= on_hand),
    reorder_point    bigint  NOT NULL CHECK (reorder_point >= 0),
    reorder_quantity bigint  NOT NULL CHECK (reorder_quantity >= 0),
    PRIMARY KEY (site, part_sku)
);

-- What each ticket's repair reserved of a part, once: handling a ticket again reserves nothing
-- more.
CREATE TABLE procurement_reservations (
    ticket_id uuid    NOT NULL,
    part_sku  text    NOT NULL,
    site      text    NOT NULL,
    quantity  bigint  NOT NULL CHECK (quantity >= 0),
    PRIMARY KEY (ticket_id, part_sku)
);

CREATE TABLE procurement_orders (
    id                    uuid    PRIMARY KEY, -- UUIDv7: time-ordered
    site                  text    NOT NULL,
    machine_id            text,
    ticket_id             uuid, -- NULL: a stock reorder
    part_sku              text    NOT NULL,
    quantity              bigint  NOT NULL CHECK (quantity > 0),
    supplier_id           text    NOT NULL,
    quoted_unit_minor     bigint  NOT NULL,
    negotiated_unit_minor bigint  NOT NULL,
    amount_minor          bigint  NOT NULL,
    savings_minor         bigint  NOT NULL,
    currency              text    NOT NULL,
    urgency               text    NOT NULL CHECK (urgency IN ('low', 'medium', 'high', 'critical')),
    status                text    NOT NULL CHECK (status IN ('awaiting_approval', 'approved', 'rejected', 'placed', 'received', 'cancelled')),
    approval_id           uuid,
    decision_id           uuid,
    quotes                text    NOT NULL, -- JSON array of the quotes considered, best first
    reason                text    NOT NULL,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    placed_at             timestamptz,
    received_at           timestamptz
);

-- An agent that handles the same ticket twice orders nothing new: one order per ticket and part,
-- and one open stock reorder per site and part, whatever writes them.
CREATE UNIQUE INDEX procurement_orders_ticket_part ON procurement_orders (ticket_id, part_sku)
    WHERE ticket_id IS NOT NULL;
CREATE UNIQUE INDEX procurement_orders_open_reorder ON procurement_orders (site, part_sku)
    WHERE ticket_id IS NULL AND status IN ('awaiting_approval', 'approved', 'placed');
CREATE INDEX procurement_orders_by_site ON procurement_orders (site, id);
