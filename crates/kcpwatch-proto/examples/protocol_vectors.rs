//! Prints the test vectors of `docs/protocol.md` (secure mode version 2).

#[path = "../tests/vectors/protocol_v2.rs"]
mod protocol_v2;

fn main() {
    for (name, value) in protocol_v2::vectors() {
        println!("{name}:\n{value}");
    }
}
