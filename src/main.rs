fn main() {
    println!("smartraiden {}", env!("CARGO_PKG_VERSION"));
}
