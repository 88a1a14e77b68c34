//! The storage conformance suite: written once against the ports, run against every backend.
//!
//! An adapter's `tests/conformance.rs` defines `async fn open() -> Fixture` (a fresh, empty,
//! migrated store with a `storage` field and an `async fn finish(self)`) and invokes
//! [`storage_conformance!`](crate::storage_conformance), which generates one `#[tokio::test]`
//! per case so that cases run in parallel and fail individually. Rate-limit stores have their
//! own, smaller suite: [`rate_limit_conformance!`](crate::rate_limit_conformance), and event
//! buses theirs: [`bus_conformance!`](crate::bus_conformance).

mod audit;
mod bus;
mod dead_letters;
mod detection;
mod devices;
mod energy;
mod gates;
mod identities;
mod machines;
mod models;
mod procurement;
mod rate_limit;
mod readings;
mod secrets;
mod sessions;
mod tickets;

pub use audit::*;
pub use bus::*;
pub use dead_letters::*;
pub use detection::*;
pub use devices::*;
pub use energy::*;
pub use gates::*;
pub use identities::*;
pub use machines::*;
pub use models::*;
pub use procurement::*;
pub use rate_limit::*;
pub use readings::*;
pub use secrets::*;
pub use sessions::*;
pub use tickets::*;

/// Generates one test per conformance case. Expects `open()` in scope (see the module docs).
#[macro_export]
macro_rules! storage_conformance {
    () => {
        $crate::storage_conformance!(@cases
            ping_answers,
            users_round_trip,
            usernames_are_unique,
            user_lookups_miss_cleanly,
            users_are_listed_by_username,
            disable_and_enable_user,
            password_change_clears_flag,
            api_keys_round_trip,
            api_key_prefixes_are_unique,
            api_keys_are_listed_newest_first,
            revoke_keeps_first_revocation_time,
            touch_records_last_use,
            secrets_first_writer_wins,
            last_admin_cannot_be_disabled_even_concurrently,
            users_and_keys_keep_their_sites,
            user_access_changes_but_an_admin_of_all_sites_stays,
            concurrent_secret_creation_agrees_on_one_value,
            machines_round_trip,
            machine_ids_are_unique,
            machines_are_listed_by_id,
            machines_update_and_delete,
            machines_are_listed_by_site,
            appends_are_idempotent_and_first_value_wins,
            repeats_within_a_batch_count_once,
            raw_ranges_are_half_open_ordered_and_limited,
            rollups_follow_appends_without_double_counting,
            latest_values_track_the_newest_stored_reading,
            readings_span_days_and_keep_microseconds,
            concurrent_appends_to_the_same_series_all_land,
            retention_removes_old_raw_data_and_rollups,
            dead_letters_keep_payloads_and_page_by_id,
            replayed_dead_letters_leave_the_pending_list,
            alerts_round_trip_and_update_by_version,
            one_active_alert_per_machine_and_kind,
            alerts_are_listed_newest_first_with_filters,
            alerts_are_listed_by_the_sites_of_their_machines,
            anomalies_round_trip_in_time_order,
            scores_round_trip_and_the_first_score_stays,
            machine_health_is_set_alone,
            machine_prediction_is_set_alone,
            audit_chain_starts_at_genesis_and_round_trips,
            audit_lists_with_filters_and_pages_both_ways,
            concurrent_audit_appends_form_one_chain,
            sessions_round_trip_with_their_user,
            refresh_tokens_rotate_once_and_reuse_ends_the_session,
            expired_refresh_tokens_are_invalid_and_stay_unused,
            concurrent_refreshes_of_one_token_rotate_once,
            sessions_are_listed_newest_first_and_end_once,
            totp_enrols_enables_and_never_accepts_a_step_twice,
            a_users_api_keys_are_revoked_together,
            secrets_are_read_and_replaced_together,
            devices_round_trip,
            device_names_are_unique_even_after_revocation,
            devices_are_listed_by_name,
            device_revocation_keeps_the_first_time_and_touch_records_connects,
            models_round_trip_without_payloads,
            model_versions_count_per_line_and_lists_filter,
            concurrent_model_inserts_get_consecutive_versions,
            promotion_keeps_one_active_model_per_line,
            concurrent_promotions_leave_one_active_model,
            rollback_walks_back_through_promotions,
            concurrent_rollbacks_roll_back_once,
            tickets_round_trip_and_update_by_version,
            one_active_ticket_per_machine_and_failure_type,
            concurrent_inserts_leave_one_active_ticket,
            an_alert_is_linked_to_one_ticket,
            tickets_are_listed_newest_first_with_filters,
            machine_tickets_are_those_that_bear_on_the_window,
            approvals_round_trip_and_are_answered_once,
            approvals_expire_only_once_their_time_is_up,
            concurrent_answers_take_an_approval_once,
            approvals_are_listed_newest_first_with_filters,
            decisions_round_trip_and_list_with_filters,
            recommendations_round_trip_and_are_decided_once,
            one_open_recommendation_per_machine_and_action,
            recommendations_expire_and_are_listed_by_site_and_status,
            procurement_catalogue_round_trips_and_upserts,
            stock_is_reserved_atomically_and_listed_by_site,
            orders_round_trip_and_are_one_per_ticket_and_part,
            one_open_reorder_per_site_and_part,
            orders_move_once_and_receiving_adds_stock,
            orders_are_listed_newest_first_and_savings_sum_per_site,
        );
    };
    (@cases $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture = open().await;
                $crate::conformance::$case(&fixture.storage).await;
                fixture.finish().await;
            }
        )+
    };
}
