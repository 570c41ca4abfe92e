//! Start-up: settings → database (migrated) → HTTP server. `Application::build` binds the
//! listener (port 0 in tests) and exposes the port; `run_until_stopped` serves.

use std::net::TcpListener;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{middleware, web, App, HttpServer};
use anyhow::Context;
use facture_actors::Engine;
use facture_core::config::Settings;
use facture_core::db::{run_migrations, Db};

use crate::error::ApiError;
use crate::routes;

/// What every handler can reach.
pub struct AppState {
    pub settings: Settings,
    pub db: Db,
    pub engine: Engine,
}

pub struct Application {
    port: u16,
    server: Server,
    db: Db,
    engine: Engine,
    metrics: crate::telemetry_metrics::Exposition,
}

impl Application {
    /// Migrates the database, starts the server's workers and binds the port.
    /// Must run inside an actix system.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let url = settings.database_url()?;
        let applied = run_migrations(&url, settings.database.busy_timeout_ms)
            .await
            .context("applying database migrations")?;
        if applied > 0 {
            tracing::info!(applied, "database migrations applied");
        }
        let db = Db::connect(
            &url,
            settings.database.pool_size,
            settings.database.busy_timeout_ms,
        )
        .await
        .context("opening the database")?;
        db.set_write_batch_limits(
            settings.database.write_batch_max,
            std::time::Duration::from_millis(settings.database.write_batch_max_ms),
        );
        let metrics = crate::telemetry_metrics::Exposition::start(&settings, &db)?;
        // The actor tree starts before the server, so the first request finds it running.
        let engine = Engine::start(&settings, db.clone()).context("starting the actor tree")?;
        let metrics_here = metrics.on_api_port();
        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&address).with_context(|| format!("binding {address}"))?;
        let port = listener.local_addr()?.port();
        let workers = settings.server.workers;
        let body_limit = settings.server.webhook_body_limit;
        let state = web::Data::new(AppState {
            settings,
            db: db.clone(),
            engine: engine.clone(),
        });
        let slice_us = state.settings.engine.ack_slice_us;
        let server = HttpServer::new(move || {
            // Runs on each worker's thread as it starts: acknowledgements wait on them.
            facture_actors::run_with_short_slice(slice_us);
            App::new()
                .app_data(state.clone())
                .app_data(json_config())
                .app_data(query_config())
                .app_data(path_config())
                .wrap(middleware::Logger::new("%r %s %Dms").log_target("facture::http"))
                .configure(|cfg| routes::configure(cfg, body_limit))
                .configure(|cfg| routes::metrics::configure(cfg, metrics_here))
                .default_service(web::to(routes::not_found))
        })
        .workers(workers)
        .disable_signals()
        .listen(listener)?
        .run();
        tracing::info!(%address, port, "facture listening");
        Ok(Self {
            port,
            server,
            db,
            engine,
            metrics,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn server_handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// The port serving /metrics when `metrics.port` is set (None: the API port serves it).
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.port()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.metrics.stop().await;
        result
    }
}

/// Runs the server until Ctrl-C / SIGTERM.
pub fn serve(mut settings: Settings) -> anyhow::Result<()> {
    for key in settings.ensure_secrets()? {
        tracing::warn!(
            key,
            dir = %settings.app.data_dir.display(),
            "no secret configured: generated a development one and stored it under the data folder"
        );
    }
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).await?;
        let handle = app.server_handle();
        actix_web::rt::spawn(async move {
            let _ = actix_web::rt::signal::ctrl_c().await;
            tracing::info!("stopping");
            handle.stop(true).await;
        });
        app.run_until_stopped().await?;
        Ok(())
    })
}

fn json_config() -> web::JsonConfig {
    web::JsonConfig::default().error_handler(|err, _| {
        ApiError::bad_request("invalid_body", format!("the JSON body is invalid: {err}")).into()
    })
}

fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _| {
        ApiError::bad_request("invalid_query", format!("invalid query parameter: {err}")).into()
    })
}

fn path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|err, _| ApiError::bad_request("invalid_path", err.to_string()).into())
}
