//! The built-in repair-step templates, one per failure type: what a new ticket's steps are when
//! nobody lists them, and the priority of a ticket the auto-ticket rule opens.
//!
//! The steps are the common first-line procedure for the failure, written for a maintenance
//! technician; a ticket opened by hand may list its own. Failures that can destroy the machine
//! or hurt someone when left alone (bearings, heat, pressure, electrics) open `critical`
//! tickets; the others open `high` ones.

use super::{FailureType, TicketPriority};

/// A failure type's repair procedure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    pub failure_type: FailureType,
    /// The priority of a ticket opened from a critical alert.
    pub auto_priority: TicketPriority,
    /// One line for people, e.g. in a ticket's title.
    pub label: &'static str,
    pub steps: &'static [&'static str],
}

/// The table, in [`FailureType::ALL`] order.
pub const TEMPLATES: [Template; 7] = [
    Template {
        failure_type: FailureType::Bearing,
        auto_priority: TicketPriority::Critical,
        label: "Bearing / vibration",
        steps: &[
            "Stop the machine and lock it out (LOTO).",
            "Confirm the fault: vibration spectrum and bearing temperature.",
            "Inspect the bearing and its lubrication: play, noise, discoloured grease.",
            "Replace the bearing and seals if worn; lubricate to specification.",
            "Check shaft alignment and balance.",
            "Run the machine and confirm vibration is back within its zone.",
        ],
    },
    Template {
        failure_type: FailureType::Overheating,
        auto_priority: TicketPriority::Critical,
        label: "Overheating",
        steps: &[
            "Reduce the load or stop the machine safely.",
            "Check the cooling: coolant level, fans, filters, heat exchanger.",
            "Check lubrication (friction heat).",
            "Check the temperature sensor against a reference thermometer.",
            "Clean or repair the cooling path; replace failed fans or pumps.",
            "Restart and watch the temperature settle below its warning limit.",
        ],
    },
    Template {
        failure_type: FailureType::PressureLeak,
        auto_priority: TicketPriority::Critical,
        label: "Pressure / leak",
        steps: &[
            "Isolate and depressurise the circuit; lock it out (LOTO).",
            "Find the leak: fittings, hoses, seals, valves.",
            "Replace the failed seal, hose or fitting.",
            "Check the relief valve and the pressure setpoint.",
            "Repressurise and leak-test.",
            "Confirm the pressure holds within its limits under load.",
        ],
    },
    Template {
        failure_type: FailureType::Electrical,
        auto_priority: TicketPriority::Critical,
        label: "Electrical / power",
        steps: &[
            "Isolate the supply (LOTO) and verify that no voltage is present.",
            "Check supply voltage, phase balance and current draw.",
            "Inspect connections, contactors, fuses and breakers for heat damage.",
            "Measure the motor windings' insulation resistance.",
            "Repair or replace the failed component.",
            "Re-energise and confirm current and power are back to normal.",
        ],
    },
    Template {
        failure_type: FailureType::Flow,
        auto_priority: TicketPriority::High,
        label: "Flow",
        steps: &[
            "Check valve positions and the flow setpoint.",
            "Inspect strainers and filters for blockage; clean them.",
            "Check the pump: impeller wear, cavitation noise, suction conditions.",
            "Check the flow meter against a reference.",
            "Repair or replace the failed part.",
            "Confirm the flow is within its limits under normal load.",
        ],
    },
    Template {
        failure_type: FailureType::SensorFault,
        auto_priority: TicketPriority::High,
        label: "Sensor fault",
        steps: &[
            "Compare the sensor with a reference measurement or a neighbouring sensor.",
            "Inspect wiring, connector and mounting.",
            "Check the transmitter or gateway configuration: range, unit, sampling.",
            "Recalibrate or replace the sensor.",
            "Confirm readings arrive and are plausible.",
        ],
    },
    Template {
        failure_type: FailureType::Other,
        auto_priority: TicketPriority::High,
        label: "Other failure",
        steps: &[
            "Inspect the machine and describe the fault.",
            "Make the machine safe (LOTO) before any work.",
            "Repair.",
            "Test run and confirm normal operation.",
        ],
    },
];

/// The template of a failure type.
pub fn template(failure_type: FailureType) -> &'static Template {
    let index = FailureType::ALL
        .iter()
        .position(|t| *t == failure_type)
        .unwrap_or(TEMPLATES.len() - 1);
    &TEMPLATES[index]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_type_has_its_own_template_with_steps() {
        for (t, template) in FailureType::ALL.iter().zip(TEMPLATES.iter()) {
            assert_eq!(template.failure_type, *t);
            assert_eq!(super::template(*t).failure_type, *t);
            assert!(!template.steps.is_empty());
            assert!(template.steps.len() <= super::super::STEPS_MAX);
            assert!(
                template
                    .steps
                    .iter()
                    .all(|s| !s.is_empty() && s.len() <= super::super::STEP_MAX)
            );
        }
    }
}
