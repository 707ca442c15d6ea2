//! How a service's settings are layered: the command line over the
//! environment (both clap's), over the settings file, over the defaults.
//!
//! A setting is declared once, as a field of the service's options: its doc
//! is the `--help` text, its `#[arg(env, default_value...)]` its variable and
//! default, and its name (in lowercase) its key in the file. The defaults of a
//! file are the same clap defaults ([`defaults`]), and [`layer`] puts the
//! values clap took from the command line or the environment over the file's.

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Command, FromArgMatches};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The options clap gives with an empty command line and no environment:
/// every default, for the settings file's missing keys (a service's options
/// say `#[serde(default = "shared::settings::defaults")]`) and for tests.
pub fn defaults<T: Args + FromArgMatches>() -> T {
    let command = T::augment_args(Command::new("defaults").no_binary_name(true))
        .mut_args(|arg| arg.env(None));
    let matches = command
        .try_get_matches_from(std::iter::empty::<String>())
        .expect("every option has a default or is optional");
    T::from_arg_matches(&matches).expect("the defaults are valid")
}

/// `file` (the settings file, its defaults filled in) with each value clap
/// took from the command line or the environment in `matches` put over it.
/// The two meet as TOML tables: an option's clap id and its key in the file
/// are both its field's name.
pub fn layer<T: FromArgMatches + Serialize + DeserializeOwned>(
    matches: &ArgMatches,
    file: T,
) -> anyhow::Result<T> {
    let given = T::from_arg_matches(matches)?;
    let mut layered = table(&file)?;
    let given = table(&given)?;
    for id in matches.ids() {
        let source = matches.value_source(id.as_str());
        if !matches!(
            source,
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        if let Some(value) = given.get(id.as_str()) {
            layered.insert(id.to_string(), value.clone());
        }
    }
    toml::Value::Table(layered)
        .try_into()
        .context("layering the settings")
}

/// `args` (without the program's name) of `command` over the settings file
/// text `file`, layered as [`layer`] does: what a service's tests resolve.
pub fn layer_args<T: FromArgMatches + Serialize + DeserializeOwned>(
    command: clap::Command,
    args: &[&str],
    file: &str,
) -> anyhow::Result<T> {
    let program = command.get_name().to_string();
    let matches = command
        .try_get_matches_from(std::iter::once(program.as_str()).chain(args.iter().copied()))?;
    let file: T = toml::from_str(file)?;
    layer(&matches, file)
}

fn table<T: Serialize>(options: &T) -> anyhow::Result<toml::Table> {
    match toml::Value::try_from(options).context("the settings as a table")? {
        toml::Value::Table(table) => Ok(table),
        other => anyhow::bail!("the settings are not a table but {}", other.type_str()),
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Parser, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Toy {
        #[arg(long, default_value = "a")]
        name: String,
        #[arg(long, default_value_t = 1)]
        count: u32,
        #[arg(long)]
        path: Option<String>,
        #[arg(skip)]
        table: std::collections::BTreeMap<String, String>,
    }

    impl Default for Toy {
        fn default() -> Toy {
            defaults()
        }
    }

    fn layered(args: &[&str], file: &str) -> Toy {
        let matches = Toy::command()
            .try_get_matches_from(std::iter::once("toy").chain(args.iter().copied()))
            .unwrap();
        layer(&matches, toml::from_str(file).unwrap()).unwrap()
    }

    #[test]
    fn the_command_line_over_the_file_over_the_defaults() {
        let toy = layered(&[], "");
        assert_eq!((toy.name.as_str(), toy.count, toy.path), ("a", 1, None));

        let file = "name = \"file\"\npath = \"p\"\n[table]\nk = \"v\"\n";
        let toy = layered(&["--count", "3"], file);
        assert_eq!((toy.name.as_str(), toy.count), ("file", 3));
        assert_eq!(
            (toy.path.as_deref(), toy.table["k"].as_str()),
            (Some("p"), "v")
        );

        // Given on the command line, even the default wins over the file.
        let toy = layered(&["--name", "a", "--path", "q"], file);
        assert_eq!((toy.name.as_str(), toy.path.as_deref()), ("a", Some("q")));
    }
}
