use std::process::ExitCode;

use ingest::config::Settings;

// Under overload glibc kept what requests had freed (the records' buffers
// and librdkafka's copies of them, allocated and freed on different
// threads): RSS stayed at its peak after the load. mimalloc gives freed
// memory back after its purge delay (1 s by default, `MIMALLOC_PURGE_DELAY`);
// with `malloc-override` (on by default) librdkafka allocates with it too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("ingest: {error:#}");
            return ExitCode::from(2);
        }
    };
    shared::logging::init(settings.log_format);
    let result = actix_web::rt::System::new().block_on(ingest::server::run(settings));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ingest: {error:#}");
            ExitCode::FAILURE
        }
    }
}
