use std::process::ExitCode;

use correlator::config::Run;

// The join allocates an output buffer per bound series and frees it once
// Kafka has it: glibc's allocator gives such churn back to the kernel and
// faults it in again (a fifth of the join's time in its benchmark). The
// `malloc-override` feature (on by default) makes mimalloc librdkafka's
// malloc too: it allocates a message, its headers and their list per output
// record and frees them on another thread, and glibc spent a quarter of the
// producer's CPU on that. `allocator` says how long it keeps freed memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    correlator::allocator::keep_freed_memory_longer();
    let (run, settings) = match correlator::config::load() {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("correlator: {error:#}");
            return ExitCode::from(2);
        }
    };
    shared::logging::init(settings.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = match run {
        Run::Correlator => runtime.block_on(correlator::server::run(settings)),
        Run::Tail {
            from_beginning,
            web: Some(view),
            ..
        } => runtime.block_on(correlator::view::run(settings, view, from_beginning)),
        Run::Tail {
            unbound,
            from_beginning,
            web: None,
        } => correlator::tail::run(&settings, unbound, from_beginning),
        Run::Forward(forward) => runtime.block_on(correlator::forward::run(settings, *forward)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("correlator: {error:#}");
            ExitCode::FAILURE
        }
    }
}
