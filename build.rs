//! Rebuilds the crate when a migration is added or changed: `sqlx::migrate!`
//! embeds the `migrations` directory at compile time, and without this cargo
//! does not notice a new file there (a test run would migrate without it).

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
