//! `bad-import`: a `wasi:cli/command` that imports `skiff:test/nothing`, an
//! interface no skiff host provides, so instantiating it must fail with an
//! error that names the missing import.

wit_bindgen::generate!({
    inline: r#"
        package skiff:test;

        interface nothing {
            nothing: func() -> u32;
        }

        world bad-import {
            import nothing;
        }
    "#,
});

fn main() {
    // Called so the import survives linking.
    println!("{}", skiff::test::nothing::nothing());
}
