//! Procurement (C2): the parts catalogue, suppliers, offers, BOMs, stock, purchase orders and
//! savings. Approving a held order is `/api/v1/approvals/{id}/approve`.

use axum::Json;
use axum::extract::State;

use fb_app::procurement::OrderQuery;
use fb_core::maintenance::TicketId;
use fb_core::procurement::{OrderId, OrderStatus};

use crate::api::v1::{
    BomLine, BomLineList, BomParams, Offer, OfferList, OffersParams, Order, OrderList,
    OrdersParams, Part, PartList, ProcurementSiteParams, Savings, StockItem, StockList,
    StockRequest, Supplier, SupplierList,
};
use crate::audit::AuditFacts;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppJson, AppPath, AppQuery, Caller};
use crate::state::AppState;

/// The parts catalogue, by sku.
#[utoipa::path(get, operation_id = "list_parts", path = "/api/v1/procurement/parts", tag = "procurement",
    responses((status = 200, description = "Parts", body = PartList)))]
pub(crate) async fn parts(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<PartList>, ApiError> {
    let parts = state.procurement.parts(&caller).await?;
    Ok(Json(PartList {
        parts: parts.into_iter().map(Into::into).collect(),
    }))
}

/// Adds a part, or replaces the one with its sku.
#[utoipa::path(post, operation_id = "put_part", path = "/api/v1/procurement/parts", tag = "procurement",
    request_body = Part,
    responses(
        (status = 200, description = "The part as stored", body = Part),
        (status = 400, description = "Invalid fields (`invalid_field`), each named", body = ErrorBody),
    ))]
pub(crate) async fn put_part(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppJson(body): AppJson<Part>,
) -> (AuditFacts, Result<Json<Part>, ApiError>) {
    let facts = AuditFacts::target(format!("part:{}", body.sku));
    let result = state.procurement.put_part(&caller, body.into()).await;
    (facts, result.map(|p| Json(p.into())).map_err(Into::into))
}

/// Suppliers, by id.
#[utoipa::path(get, operation_id = "list_suppliers", path = "/api/v1/procurement/suppliers", tag = "procurement",
    responses((status = 200, description = "Suppliers", body = SupplierList)))]
pub(crate) async fn suppliers(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<SupplierList>, ApiError> {
    let suppliers = state.procurement.suppliers(&caller).await?;
    Ok(Json(SupplierList {
        suppliers: suppliers.into_iter().map(Into::into).collect(),
    }))
}

/// Adds a supplier, or replaces the one with its id.
#[utoipa::path(post, operation_id = "put_supplier", path = "/api/v1/procurement/suppliers", tag = "procurement",
    request_body = Supplier,
    responses(
        (status = 200, description = "The supplier as stored", body = Supplier),
        (status = 400, description = "Invalid fields (`invalid_field`), each named", body = ErrorBody),
    ))]
pub(crate) async fn put_supplier(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppJson(body): AppJson<Supplier>,
) -> (AuditFacts, Result<Json<Supplier>, ApiError>) {
    let facts = AuditFacts::target(format!("supplier:{}", body.id));
    let result = state.procurement.put_supplier(&caller, body.into()).await;
    (facts, result.map(|s| Json(s.into())).map_err(Into::into))
}

/// Suppliers' offers, by part and supplier.
#[utoipa::path(get, operation_id = "list_offers", path = "/api/v1/procurement/offers", tag = "procurement",
    params(OffersParams),
    responses((status = 200, description = "Offers", body = OfferList)))]
pub(crate) async fn offers(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppQuery(params): AppQuery<OffersParams>,
) -> Result<Json<OfferList>, ApiError> {
    let offers = state
        .procurement
        .offers(&caller, params.part.as_deref())
        .await?;
    Ok(Json(OfferList {
        offers: offers.into_iter().map(Into::into).collect(),
    }))
}

/// Adds or replaces a supplier's offer for a part.
#[utoipa::path(post, operation_id = "put_offer", path = "/api/v1/procurement/offers", tag = "procurement",
    request_body = Offer,
    responses(
        (status = 200, description = "The offer as stored", body = Offer),
        (status = 400, description = "Invalid fields (`invalid_field`), or the supplier quotes in another currency than the part's (`currency_mismatch`)", body = ErrorBody),
        (status = 404, description = "No such part (`part_not_found`) or supplier (`supplier_not_found`)", body = ErrorBody),
    ))]
pub(crate) async fn put_offer(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppJson(body): AppJson<Offer>,
) -> (AuditFacts, Result<Json<Offer>, ApiError>) {
    let facts = AuditFacts::target(format!("part:{}", body.part))
        .detail("supplier", body.supplier.as_str());
    let result = state.procurement.put_offer(&caller, body.into()).await;
    (facts, result.map(|o| Json(o.into())).map_err(Into::into))
}

/// Bills of materials: the parts each repair needs.
#[utoipa::path(get, operation_id = "list_bom_lines", path = "/api/v1/procurement/boms", tag = "procurement",
    params(BomParams),
    responses((status = 200, description = "BOM lines", body = BomLineList)))]
pub(crate) async fn boms(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppQuery(params): AppQuery<BomParams>,
) -> Result<Json<BomLineList>, ApiError> {
    let lines = state
        .procurement
        .bom_lines(&caller, params.machine_type.as_deref())
        .await?;
    Ok(Json(BomLineList {
        lines: lines.into_iter().map(Into::into).collect(),
    }))
}

/// Adds a BOM line, or replaces the quantity of (machine type, failure type, part).
#[utoipa::path(post, operation_id = "put_bom_line", path = "/api/v1/procurement/boms", tag = "procurement",
    request_body = BomLine,
    responses(
        (status = 200, description = "The line as stored", body = BomLine),
        (status = 400, description = "Invalid fields (`invalid_field`), each named", body = ErrorBody),
        (status = 404, description = "No such part (`part_not_found`)", body = ErrorBody),
    ))]
pub(crate) async fn put_bom_line(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppJson(body): AppJson<BomLine>,
) -> (AuditFacts, Result<Json<BomLine>, ApiError>) {
    let facts = AuditFacts::target(format!("machine_type:{}", body.machine_type))
        .detail("part", body.part.as_str());
    let result = state.procurement.put_bom_line(&caller, body.into()).await;
    (facts, result.map(|l| Json(l.into())).map_err(Into::into))
}

/// Stock of the caller's sites (or one site), by site and part.
#[utoipa::path(get, operation_id = "list_stock", path = "/api/v1/procurement/stock", tag = "procurement",
    params(ProcurementSiteParams),
    responses(
        (status = 200, description = "Stock", body = StockList),
        (status = 403, description = "The site is outside the caller's sites (`site_out_of_scope`)", body = ErrorBody),
    ))]
pub(crate) async fn stock(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppQuery(params): AppQuery<ProcurementSiteParams>,
) -> Result<Json<StockList>, ApiError> {
    let stock = state.procurement.stock(&caller, params.site).await?;
    Ok(Json(StockList {
        stock: stock.into_iter().map(Into::into).collect(),
    }))
}

/// Sets a part's stock at a site: the count on hand and the reorder settings.
#[utoipa::path(post, operation_id = "put_stock", path = "/api/v1/procurement/stock", tag = "procurement",
    request_body = StockRequest,
    responses(
        (status = 200, description = "The stock as stored", body = StockItem),
        (status = 400, description = "Invalid fields (`invalid_field`), each named", body = ErrorBody),
        (status = 403, description = "The site is outside the caller's sites (`site_out_of_scope`)", body = ErrorBody),
        (status = 404, description = "No such part (`part_not_found`)", body = ErrorBody),
    ))]
pub(crate) async fn put_stock(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppJson(body): AppJson<StockRequest>,
) -> (AuditFacts, Result<Json<StockItem>, ApiError>) {
    let facts =
        AuditFacts::target(format!("part:{}", body.part)).detail("site", body.site.as_str());
    let result = state.procurement.put_stock(&caller, body.into()).await;
    (facts, result.map(|s| Json(s.into())).map_err(Into::into))
}

/// Purchase orders of the caller's sites, newest first.
#[utoipa::path(get, operation_id = "list_orders", path = "/api/v1/procurement/orders", tag = "procurement",
    params(OrdersParams),
    responses(
        (status = 200, description = "Orders", body = OrderList),
        (status = 400, description = "Invalid parameter (named)", body = ErrorBody),
    ))]
pub(crate) async fn orders(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppQuery(params): AppQuery<OrdersParams>,
) -> Result<Json<OrderList>, ApiError> {
    let limit = super::gates::limit_param(params.limit)?;
    let status = params
        .status
        .as_deref()
        .map(|s| {
            OrderStatus::parse(s).ok_or_else(|| {
                ApiError::invalid_parameter(
                    "status",
                    "must be awaiting_approval, approved, rejected, placed, received or cancelled",
                )
            })
        })
        .transpose()?;
    let orders = state
        .procurement
        .orders(
            &caller,
            OrderQuery {
                site: params.site,
                status,
                ticket: params.ticket.map(TicketId),
                before: params.before.map(OrderId),
                limit,
            },
        )
        .await?;
    let next_before = (orders.len() == limit)
        .then(|| orders.last().map(|o| o.id.0))
        .flatten();
    Ok(Json(OrderList {
        orders: orders.into_iter().map(Into::into).collect(),
        next_before,
    }))
}

/// One order with the quotes it was chosen from.
#[utoipa::path(get, operation_id = "get_order", path = "/api/v1/procurement/orders/{id}", tag = "procurement",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 404, description = "No such order in the caller's sites (`order_not_found`)", body = ErrorBody),
    ))]
pub(crate) async fn order(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(id): AppPath<uuid::Uuid>,
) -> Result<Json<Order>, ApiError> {
    let order = state.procurement.order(&caller, OrderId(id)).await?;
    Ok(Json(order.into()))
}

/// Marks a placed order received: its quantity is added to the site's stock.
#[utoipa::path(post, operation_id = "receive_order", path = "/api/v1/procurement/orders/{id}/receive", tag = "procurement",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order, received", body = Order),
        (status = 404, description = "No such order in the caller's sites (`order_not_found`)", body = ErrorBody),
        (status = 409, description = "The order is not placed (`order_transition_invalid`)", body = ErrorBody),
    ))]
pub(crate) async fn receive(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(id): AppPath<uuid::Uuid>,
) -> Result<(AuditFacts, Json<Order>), ApiError> {
    let order = state.procurement.receive(&caller, OrderId(id)).await?;
    let facts = AuditFacts::target(format!("order:{id}"))
        .detail("part", order.part.as_str())
        .detail("quantity", order.quantity.to_string());
    Ok((facts, Json(order.into())))
}

/// What placed and received orders cost and saved, in total and per site, per currency.
#[utoipa::path(get, operation_id = "procurement_savings", path = "/api/v1/procurement/savings", tag = "procurement",
    params(ProcurementSiteParams),
    responses(
        (status = 200, description = "Savings", body = Savings),
        (status = 403, description = "The site is outside the caller's sites (`site_out_of_scope`)", body = ErrorBody),
    ))]
pub(crate) async fn savings(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppQuery(params): AppQuery<ProcurementSiteParams>,
) -> Result<Json<Savings>, ApiError> {
    let rows = state.procurement.savings(&caller, params.site).await?;
    Ok(Json(rows.into()))
}
