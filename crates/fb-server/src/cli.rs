//! The command line. Every command and flag has `--help`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::Value;
use tracing::Instrument;

use crate::settings::{Layers, LogFormat, Settings, SettingsErrors};
use crate::{admin, logging, serve};

#[derive(Debug, Parser)]
#[command(
    name = "factorybrain",
    version,
    about = "FactoryBrain: AI agents over a plant's live data."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// YAML settings file (see `factorybrain config example`).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for the embedded database and local state [settings: server.data_dir].
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log format [settings: log.format].
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: HTTP API, health, metrics.
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Inspect settings.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Apikey(ApiKeyCommand),
    /// Manage the token signing key.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Manage device credentials: the MQTT logins of the embedded broker, one per device.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Check the audit log's hash chain, or print its head to keep elsewhere.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage the prediction models: list the registry, make a version active, roll back.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Run the simulated plant as a load generator against a server (HTTP) or a broker (MQTT).
    Simulate(SimulateArgs),
    /// Score the detectors and the failure predictors on public benchmarks, or the detectors on
    /// your own labelled history.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Print the version and the compiled-in storage backends.
    Version,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Number of simulated machines (seven sensors each: five of their condition, output and scrap).
    #[arg(long, default_value_t = 10)]
    pub machines: usize,
    /// Samples per second; each sends one reading per sensor of every machine.
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// How long to run: 90s, 5m, 1h.
    #[arg(long, default_value = "60s")]
    pub duration: String,
    /// http://host:port (a running factorybrain) or mqtt://host:port (a broker it subscribes to).
    #[arg(long)]
    pub target: String,
    /// API key for an http:// target (needs plant.manage to register the machines).
    #[arg(long, env = "FB_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Seed: the same seed gives the same plant, readings and faults.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Topic prefix for an mqtt:// target.
    #[arg(long, default_value = "factorybrain")]
    pub topic_prefix: String,
    /// MQTT user name for an mqtt:// target: a device name (`factorybrain device add`).
    #[arg(long, env = "FB_MQTT_USERNAME", requires = "mqtt_password")]
    pub mqtt_username: Option<String>,
    /// MQTT password for an mqtt:// target (the device's, as printed once by `device add`).
    #[arg(
        long,
        env = "FB_MQTT_PASSWORD",
        hide_env_values = true,
        requires = "mqtt_username"
    )]
    pub mqtt_password: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// The Numenta Anomaly Benchmark: the three NAB scores (standard, reward low FP, reward low
    /// FN) of the product's detector, with one setting for every file.
    Nab {
        /// The NAB checkout: data/ and labels/combined_windows.json.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// Warm-up points for every file instead of NAB's probationary period.
        #[arg(long, value_name = "POINTS")]
        warmup: Option<usize>,
        /// Print one JSON object with the figures.
        #[arg(long)]
        json: bool,
    },
    /// Your own labelled history (CSV, one machine per file): point-wise precision, recall, F1,
    /// false- and missed-alarm rates of the per-machine detection, and labelled events found.
    /// Sensors are the columns that are numeric in every row; the first rows of each file only
    /// train the detectors.
    Csv(EvalCsvArgs),
    /// NASA C-MAPSS turbofan engines: trains the remaining-useful-life model on the subset's
    /// training file only (cross-validation by engine, bounded parameter search), predicts the
    /// last cycle of each test engine and prints RMSE and the PHM08 score against the published
    /// RUL, with training time and the live predictor's cost.
    Cmapss(EvalCmapssArgs),
    /// AI4I 2020 milling operations: trains a failure-probability model per failure mode on the
    /// first 70 % of every 1,000 operations and prints precision, recall and F1 on the rest.
    Ai4i(EvalAi4iArgs),
}

/// How hard the training searches; the defaults are what the README's figures used.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Parameter sets tried by cross-validation (the default set first).
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub candidates: usize,
    /// Cross-validation folds (by unit; the fold models are averaged).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub folds: usize,
    /// Seed for folds, bagging and the search: the same seed gives the same model.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Threads for training [default: the cores available]; the model does not depend on it.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Print one JSON object with the figures.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EvalCmapssArgs {
    /// Which subset: FD001, FD002, FD003 or FD004.
    #[arg(long, value_name = "FD00x", default_value = "FD001")]
    pub subset: String,
    /// The folder with train_FD00x.txt, test_FD00x.txt and RUL_FD00x.txt.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Also write the trained model (JSON) to this file.
    #[arg(long, value_name = "FILE")]
    pub save_model: Option<PathBuf>,
    #[command(flatten)]
    pub search: SearchArgs,
}

#[derive(Debug, Args)]
pub struct EvalAi4iArgs {
    /// ai4i2020.csv as published (UCI 601).
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    #[command(flatten)]
    pub search: SearchArgs,
}

#[derive(Debug, Args)]
pub struct EvalCsvArgs {
    /// CSV files with a header row; each is one machine with its own detection.
    #[arg(required = true, value_name = "FILES")]
    pub files: Vec<PathBuf>,
    /// Column with each row's time: RFC 3339 or ISO date-time (UTC without offset), Unix
    /// seconds, or another number of seconds such as a row index. Rows must be in time order.
    #[arg(long, value_name = "COLUMN")]
    pub time_column: String,
    /// Column with each row's label: 1 or true (anomalous), 0 or false (normal).
    #[arg(long, value_name = "COLUMN")]
    pub label_column: String,
    /// Field separator: one character, or \t for a tab.
    #[arg(long, value_name = "CHAR", default_value = ",")]
    pub sep: String,
    /// Rows at the start of each file the detectors only train on, not scored
    /// [default: 15 % of the file's rows, at least 10, at most 750].
    #[arg(long, value_name = "N")]
    pub train_rows: Option<usize>,
    /// Columns that are not sensors, comma-separated (other labels, numeric identifiers).
    #[arg(long, value_name = "COL,COL", value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// Print one JSON object with the figures.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, e.g. 0.0.0.0:8080 [settings: server.listen].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Run a simulated plant in-process: 10 machines sending seven sensors each every second.
    #[arg(long)]
    pub demo: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the full default settings, every key commented.
    Example,
    /// Load the settings from all layers and report every problem, or print "ok".
    Check,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. Without --password-stdin a password is generated and printed once.
    Add {
        username: String,
        /// admin, supervisor, operator or viewer.
        #[arg(long)]
        role: String,
        /// The sites the user reaches, comma-separated (e.g. plant-a,plant-b), or "all".
        #[arg(long, value_name = "SITES", default_value = "all")]
        sites: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Disable a user: no login, and its tokens stop working at once.
    Disable { username: String },
    /// Re-enable a disabled user.
    Enable { username: String },
    /// End every session of a user: their access and refresh tokens stop working at once.
    EndSessions { username: String },
    /// Remove a user's second factor (a lost phone) and end their sessions; they enrol again
    /// after their next login.
    ResetMfa { username: String },
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Replace the stored token signing key with a new random one. Tokens signed with the old
    /// key stay valid until they expire; sessions go on (their next refresh gets a token signed
    /// with the new key); every node picks the new key up within a minute. Not for a key set in
    /// the settings (auth.jwt_secret): change it there, moving the old one to
    /// auth.jwt_previous_secret.
    RotateSigningKey,
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key; the key is printed once.
    Create {
        /// A name that says what uses the key, e.g. "historian-bridge".
        #[arg(long)]
        name: String,
        /// admin, supervisor, operator or viewer.
        #[arg(long)]
        role: String,
        /// The sites the key reaches, comma-separated (e.g. plant-a,plant-b), or "all".
        #[arg(long, value_name = "SITES", default_value = "all")]
        sites: String,
        /// Expire the key after this many days.
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u32>,
    },
    /// List API keys (never their secrets).
    List,
    /// Revoke an API key by id or prefix.
    Revoke { key: String },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Create a device credential; its MQTT password is printed once. The name is the device's
    /// MQTT user name: name it after its machine to use the Mosquitto ACL pattern in the README.
    Add {
        /// 1 to 64 letters, digits, '.', '_' or '-'; never reused, even after revocation.
        name: String,
        /// The machine id the device sends for (informational).
        #[arg(long)]
        machine: Option<String>,
        /// The site the device sits at (informational).
        #[arg(long)]
        site: Option<String>,
    },
    /// List device credentials (never their passwords).
    List,
    /// Revoke a device credential by name or id: the broker refuses it from then on.
    Revoke { device: String },
}

/// What a model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelKindArg {
    /// Remaining useful life.
    Rul,
    /// Probability of failure within a horizon.
    Failure,
}

impl From<ModelKindArg> for fb_core::model::ModelKind {
    fn from(kind: ModelKindArg) -> Self {
        match kind {
            ModelKindArg::Rul => Self::Rul,
            ModelKindArg::Failure => Self::Failure,
        }
    }
}

/// A kind and machine type: one line of model versions.
#[derive(Debug, Args)]
pub struct ModelLineArgs {
    #[arg(long, value_enum)]
    pub kind: ModelKindArg,
    /// The machine type the models serve, e.g. centrifugal_pump.
    #[arg(long, value_name = "TYPE")]
    pub machine_type: String,
}

/// The file format of a training history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HistoryFormat {
    /// Your machines' histories: unit, time, settings, sensors, failed (see the README).
    Csv,
    /// A NASA C-MAPSS training file (train_FD00x.txt): every engine runs to failure.
    Cmapss,
}

/// Which features the model computes from each input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FeatureSet {
    /// Window statistics and EWMAs only: for machines watched live from the middle of their
    /// life (the server's predictors start when it does).
    Condition,
    /// Also the unit's age and the drift from its first readings: for histories and live feeds
    /// that start when the unit does (C-MAPSS engines).
    RunToFailure,
}

#[derive(Debug, Args)]
pub struct ModelTrainArgs {
    #[arg(long, value_enum)]
    pub kind: ModelKindArg,
    /// The history to learn from: a CSV file of your machines' units, or a C-MAPSS training
    /// file.
    #[arg(long, value_name = "PATH")]
    pub data: PathBuf,
    #[arg(long, value_enum, default_value = "csv")]
    pub format: HistoryFormat,
    /// The machine type the model serves, as in the machines' `machine_type` [default for
    /// C-MAPSS: turbofan; required for CSV].
    #[arg(long, value_name = "TYPE")]
    pub machine_type: Option<String>,
    /// Failure models: the probability is of failing within this many time units [default: 30].
    #[arg(long, value_name = "H")]
    pub horizon: Option<f64>,
    /// RUL models: the remaining life is capped at this many time units (it cannot be told
    /// early in life) [default: 125].
    #[arg(long, value_name = "C")]
    pub cap: Option<f64>,
    /// Seconds in one unit of the history's time (3600: hours; a C-MAPSS cycle counts as an
    /// hour unless told otherwise). Live, RUL in hours = RUL × this / 3600.
    #[arg(long, value_name = "SECS", default_value_t = 3600.0)]
    pub time_unit_secs: f64,
    /// Seconds per observation when the model runs live: readings are averaged over this
    /// interval [default: the history's median step].
    #[arg(long, value_name = "SECS")]
    pub sample_secs: Option<f64>,
    /// CSV: columns that are operating settings (load, speed…), comma-separated.
    #[arg(long, value_name = "COLUMNS", value_delimiter = ',')]
    pub settings: Vec<String>,
    /// CSV: columns to leave out (text, identifiers), comma-separated.
    #[arg(long, value_name = "COLUMNS", value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// CSV: field separator, one character, or \t for a tab.
    #[arg(long, value_name = "CHAR", default_value = ",")]
    pub sep: String,
    /// [default: condition for CSV, run-to-failure for C-MAPSS]
    #[arg(long, value_enum)]
    pub features: Option<FeatureSet>,
    /// A note kept with the model in the registry.
    #[arg(long)]
    pub note: Option<String>,
    /// Make the new model active at once (as `model promote` would).
    #[arg(long)]
    pub promote: bool,
    #[command(flatten)]
    pub search: SearchArgs,
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Train a model on a history (cross-validation by unit, a bounded parameter search) and
    /// register it as the next version of its kind and machine type: the way models enter the
    /// registry. A progress bar goes to stderr when it is a terminal.
    Train(Box<ModelTrainArgs>),
    /// List registered models (never their payloads), newest version first for each kind and
    /// machine type; ACTIVE marks the model in use.
    List {
        #[arg(long, value_enum)]
        kind: Option<ModelKindArg>,
        /// Only models for this machine type.
        #[arg(long, value_name = "TYPE")]
        machine_type: Option<String>,
    },
    /// Make a model the active one of its kind and machine type, once this build has loaded it
    /// (a model it cannot load is refused and the active one stays). Running servers switch to
    /// it within 5 seconds.
    Promote {
        /// The model's id, as `model list` shows it.
        id: String,
    },
    /// Make the model that was active before the current one active again; a second rollback
    /// goes one promotion further back. Running servers switch within 5 seconds.
    Rollback(ModelLineArgs),
    /// Who made which model active, when, and how (promote or rollback); newest first.
    History(ModelLineArgs),
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every record against its hash, each against the one before it, and the end against
    /// the stored head and any anchors. Exit code 0 when intact, 3 with every problem listed, one
    /// per line.
    Verify {
        /// A head kept outside the store, as printed by `audit head` (repeatable): finds a chain
        /// rewritten from some record on, which the stored head alone cannot.
        #[arg(long = "anchor", value_name = "SEQ:HASH")]
        anchors: Vec<String>,
        /// Print one JSON object: intact, checked, head and problems.
        #[arg(long)]
        json: bool,
    },
    /// Print the newest record's seq and hash as SEQ:HASH, to keep outside the store (a ticket,
    /// a log shipper, paper) and pass to `audit verify --anchor` later.
    Head {
        /// Print {"seq": …, "hash": …}.
        #[arg(long)]
        json: bool,
    },
}

impl Cli {
    /// Flags that override settings, as (dotted path, value).
    fn setting_flags(&self) -> Vec<(String, Value)> {
        let mut flags = Vec::new();
        if let Some(dir) = &self.global.data_dir {
            flags.push((
                "server.data_dir".to_owned(),
                Value::String(dir.display().to_string()),
            ));
        }
        if let Some(format) = self.global.log_format {
            let name = match format {
                LogFormat::Json => "json",
                LogFormat::Pretty => "pretty",
            };
            flags.push(("log.format".to_owned(), Value::String(name.to_owned())));
        }
        if let Command::Serve(ServeArgs {
            listen: Some(listen),
            ..
        }) = &self.command
        {
            flags.push(("server.listen".to_owned(), Value::String(listen.clone())));
        }
        flags
    }
}

/// Runs a parsed command line. Exit codes: 0 success, 1 failure, 2 invalid settings, 3 the audit
/// chain is damaged (`audit verify`).
#[allow(clippy::print_stdout, clippy::print_stderr)] // The CLI's output is its interface.
pub fn run(cli: Cli) -> ExitCode {
    match &cli.command {
        Command::Config(ConfigCommand::Example) => {
            print!("{}", crate::settings::DEFAULTS_YAML);
            return ExitCode::SUCCESS;
        }
        Command::Simulate(args) => return simulate(args),
        Command::Eval(command) => return eval(command),
        Command::Version => {
            println!("factorybrain {}", env!("CARGO_PKG_VERSION"));
            println!("storage backends: {}", crate::wire::BACKENDS.join(", "));
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let layers = Layers::from_process(cli.global.config.clone(), cli.setting_flags());
    let settings = match Settings::load(&layers) {
        Ok(settings) => settings,
        Err(errors) => return settings_failure(&errors),
    };
    if let Command::Config(ConfigCommand::Check) = cli.command {
        println!("ok");
        return ExitCode::SUCCESS;
    }
    let serving = matches!(cli.command, Command::Serve(_));
    // Administrative commands log only warnings, so their output stays readable.
    logging::init(&settings.log, serving);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Administrative commands are background operations too: one op id for everything they log
    // and for the audit records of what they change.
    let op_id = uuid::Uuid::now_v7().to_string();
    let command_span = tracing::info_span!("command", op_id = %op_id);
    let result = runtime.block_on(
        async move {
            match cli.command {
                Command::Serve(args) => serve::run(settings, args.demo).await,
                Command::Migrate => admin::migrate(&settings).await,
                Command::User(command) => admin::user(&settings, command, &op_id).await,
                Command::Apikey(command) => admin::api_key(&settings, command, &op_id).await,
                Command::Auth(command) => admin::auth(&settings, command, &op_id).await,
                Command::Device(command) => admin::device(&settings, command, &op_id).await,
                Command::Audit(command) => admin::audit(&settings, command).await,
                Command::Model(command) => admin::model(&settings, command, &op_id).await,
                Command::Config(_) | Command::Version | Command::Simulate(_) | Command::Eval(_) => {
                    Ok(())
                }
            }
        }
        .instrument(command_span.clone()),
    );
    let _in_command = command_span.enter();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(errors) = e.downcast_ref::<SettingsErrors>() {
                return settings_failure(errors);
            }
            if let Some(damaged) = e.downcast_ref::<admin::AuditDamaged>() {
                eprintln!("error: {damaged}");
                return ExitCode::from(3);
            }
            tracing::error!(error = format!("{e:#}"), "Command failed.");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stderr)]
fn settings_failure(errors: &SettingsErrors) -> ExitCode {
    eprint!("error: {errors}");
    ExitCode::from(2)
}

/// Evaluations read files and need no settings or store.
#[allow(clippy::print_stderr)]
fn eval(command: &EvalCommand) -> ExitCode {
    let result = match command {
        EvalCommand::Nab { data, warmup, json } => crate::eval::nab(data, *warmup, *json),
        EvalCommand::Csv(args) => crate::eval::csv(args),
        EvalCommand::Cmapss(args) => crate::eval::cmapss(args),
        EvalCommand::Ai4i(args) => crate::eval::ai4i(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The load generator needs no settings or store: it talks to a server or broker.
#[allow(clippy::print_stderr)]
fn simulate(args: &SimulateArgs) -> ExitCode {
    let duration = match crate::simulate::parse_duration(&args.duration) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: --duration: {e}");
            return ExitCode::from(2);
        }
    };
    let run = crate::simulate::Args {
        machines: args.machines,
        rate: args.rate,
        duration,
        target: args.target.clone(),
        api_key: args.api_key.clone(),
        seed: args.seed,
        topic_prefix: args.topic_prefix.clone(),
        mqtt_credentials: args.mqtt_username.clone().zip(args.mqtt_password.clone()),
    };
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(crate::simulate::run(run)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
