use std::process::ExitCode;

use ingest::config::Settings;

fn main() -> ExitCode {
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("ingest: {error:#}");
            return ExitCode::from(2);
        }
    };
    ingest::server::init_logging(settings.log_format);
    let result = actix_web::rt::System::new().block_on(ingest::server::run(settings));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ingest: {error:#}");
            ExitCode::FAILURE
        }
    }
}
