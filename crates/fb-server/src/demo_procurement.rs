//! The demo plant's procurement catalogue (`serve --demo`): spare parts, BOM lines for each
//! simulated machine type's failure types, three suppliers with offers, and stock at the demo
//! site, so that a ticket the demo's faults open has parts to reserve and order.
//!
//! Seeding is idempotent: parts, suppliers, offers and BOM lines are upserts, and stock is set
//! only where the site has none yet, so a restart never resets counts the plant changed.

use fb_app::auth::SystemPrincipal;
use fb_app::procurement::{Error, Service};
use fb_core::identity::Principal;
use fb_core::maintenance::FailureType;
use fb_core::procurement::{BomLine, Offer, Part, StockItem, Supplier};

/// The site of the simulated plant (`fb_sim::plant_machines`).
pub const DEMO_SITE: &str = "demo-plant";

/// (sku, name, unit).
const PARTS: &[(&str, &str, &str)] = &[
    ("BRG-6205", "Deep groove ball bearing 6205-2RS", "pcs"),
    ("GREASE-LI2", "Lithium bearing grease, 400 g", "pcs"),
    ("FAN-120", "Motor cooling fan 120 mm", "pcs"),
    ("SEAL-KIT-40", "Shaft seal kit 40 mm", "pcs"),
    ("VALVE-PRV-10", "Pressure relief valve 10 bar", "pcs"),
    ("PT100-M8", "PT100 temperature probe M8", "pcs"),
    ("ACC-100", "Vibration accelerometer 100 mV/g", "pcs"),
    ("CONTACTOR-25", "Motor contactor 25 A", "pcs"),
];

/// (id, name, reliability).
const SUPPLIERS: &[(&str, &str, f64)] = &[
    ("acme-bearings", "Acme Bearings GmbH", 0.96),
    ("rhein-industrial", "Rhein Industrial Supply", 0.90),
    ("fast-parts", "FastParts Express", 0.82),
];

/// (supplier, sku, unit price in cents, lead time in days, max discount %).
const OFFERS: &[(&str, &str, i64, u32, f64)] = &[
    ("acme-bearings", "BRG-6205", 1_850, 5, 10.0),
    ("rhein-industrial", "BRG-6205", 1_690, 9, 8.0),
    ("fast-parts", "BRG-6205", 2_400, 1, 3.0),
    ("acme-bearings", "GREASE-LI2", 1_200, 5, 10.0),
    ("rhein-industrial", "GREASE-LI2", 990, 7, 5.0),
    ("rhein-industrial", "FAN-120", 4_500, 6, 8.0),
    ("fast-parts", "FAN-120", 5_900, 1, 2.0),
    ("acme-bearings", "SEAL-KIT-40", 7_800, 10, 12.0),
    ("rhein-industrial", "SEAL-KIT-40", 6_900, 8, 6.0),
    ("fast-parts", "SEAL-KIT-40", 9_400, 2, 0.0),
    ("rhein-industrial", "VALVE-PRV-10", 21_000, 12, 10.0),
    ("fast-parts", "VALVE-PRV-10", 26_500, 3, 5.0),
    ("acme-bearings", "PT100-M8", 3_900, 4, 8.0),
    ("fast-parts", "PT100-M8", 4_700, 1, 0.0),
    ("rhein-industrial", "ACC-100", 18_900, 10, 10.0),
    ("fast-parts", "ACC-100", 23_000, 2, 4.0),
    ("rhein-industrial", "CONTACTOR-25", 6_400, 5, 8.0),
    ("fast-parts", "CONTACTOR-25", 7_900, 1, 2.0),
];

/// The simulator's machine types (`fb_sim::MachineKind::name`).
const MACHINE_TYPES: &[&str] = &["pump", "compressor", "press", "cnc_mill", "conveyor"];

/// What a repair of each failure type needs on every machine type, and what only the machines
/// with pressure (pumps, compressors, presses) need for a leak.
fn bom_lines() -> Vec<BomLine> {
    let mut lines = Vec::new();
    let common: &[(FailureType, &str, u32)] = &[
        (FailureType::Bearing, "BRG-6205", 2),
        (FailureType::Bearing, "GREASE-LI2", 1),
        (FailureType::Overheating, "FAN-120", 1),
        (FailureType::SensorFault, "PT100-M8", 1),
        (FailureType::SensorFault, "ACC-100", 1),
        (FailureType::Electrical, "CONTACTOR-25", 1),
    ];
    for machine_type in MACHINE_TYPES {
        for &(failure, part, quantity) in common {
            lines.push(BomLine {
                machine_type: (*machine_type).to_owned(),
                failure_type: Some(failure),
                part: part.to_owned(),
                quantity,
            });
        }
        if matches!(*machine_type, "pump" | "compressor" | "press") {
            for (part, quantity) in [("SEAL-KIT-40", 1), ("VALVE-PRV-10", 1)] {
                lines.push(BomLine {
                    machine_type: (*machine_type).to_owned(),
                    failure_type: Some(FailureType::PressureLeak),
                    part: part.to_owned(),
                    quantity,
                });
            }
        }
    }
    lines
}

/// (sku, on hand, reorder point, reorder quantity) at [`DEMO_SITE`].
const STOCK: &[(&str, u32, u32, u32)] = &[
    ("BRG-6205", 3, 4, 10),
    ("GREASE-LI2", 6, 2, 6),
    ("FAN-120", 1, 1, 2),
    ("SEAL-KIT-40", 0, 1, 3),
    ("VALVE-PRV-10", 1, 0, 0),
    ("PT100-M8", 2, 1, 4),
    ("ACC-100", 0, 0, 0),
    ("CONTACTOR-25", 2, 1, 2),
];

/// Seeds the catalogue, offers, BOMs and the demo site's stock (see the module docs).
pub async fn seed(procurement: &Service) -> Result<(), Error> {
    let system = Principal::system();
    for &(sku, name, unit) in PARTS {
        let part = Part {
            sku: sku.to_owned(),
            name: name.to_owned(),
            unit: unit.to_owned(),
            currency: "EUR".to_owned(),
        };
        procurement.put_part(&system, part).await?;
    }
    for &(id, name, reliability) in SUPPLIERS {
        let supplier = Supplier {
            id: id.to_owned(),
            name: name.to_owned(),
            reliability,
            currency: "EUR".to_owned(),
        };
        procurement.put_supplier(&system, supplier).await?;
    }
    for &(supplier, part, price, lead, max) in OFFERS {
        let offer = Offer {
            supplier: supplier.to_owned(),
            part: part.to_owned(),
            unit_price_minor: price,
            lead_time_days: lead,
            max_discount_pct: max,
        };
        procurement.put_offer(&system, offer).await?;
    }
    for line in bom_lines() {
        procurement.put_bom_line(&system, line).await?;
    }
    let existing = procurement
        .stock(&system, Some(DEMO_SITE.to_owned()))
        .await?;
    for &(part, on_hand, reorder_point, reorder_quantity) in STOCK {
        if existing.iter().any(|s| s.part == part) {
            continue;
        }
        let item = StockItem {
            site: DEMO_SITE.to_owned(),
            part: part.to_owned(),
            on_hand,
            reserved: 0,
            reorder_point,
            reorder_quantity,
        };
        procurement.put_stock(&system, item).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_part_of_the_demo_is_offered_and_valid() {
        let skus: BTreeSet<&str> = PARTS.iter().map(|p| p.0).collect();
        for &(sku, name, unit) in PARTS {
            let part = Part {
                sku: sku.into(),
                name: name.into(),
                unit: unit.into(),
                currency: "EUR".into(),
            };
            assert!(part.validate().is_empty(), "{sku}");
            assert!(
                OFFERS.iter().any(|o| o.1 == sku),
                "{sku} has no supplier: the agent could not order it"
            );
        }
        for &(supplier, part, price, lead, max) in OFFERS {
            assert!(SUPPLIERS.iter().any(|s| s.0 == supplier), "{supplier}");
            assert!(skus.contains(part), "{part}");
            let offer = Offer {
                supplier: supplier.into(),
                part: part.into(),
                unit_price_minor: price,
                lead_time_days: lead,
                max_discount_pct: max,
            };
            assert!(offer.validate().is_empty(), "{supplier} {part}");
        }
        for line in bom_lines() {
            assert!(line.validate().is_empty());
            assert!(skus.contains(line.part.as_str()), "{}", line.part);
        }
        for &(sku, ..) in STOCK {
            assert!(skus.contains(sku), "{sku}");
        }
    }

    #[test]
    fn the_machine_types_are_the_simulators() {
        let now = time::OffsetDateTime::now_utc();
        for (m, kind) in fb_sim::plant_machines(5, now) {
            assert!(MACHINE_TYPES.contains(&kind.name()), "{}", kind.name());
            assert_eq!(m.location.site, DEMO_SITE);
        }
    }
}
