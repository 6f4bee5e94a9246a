#[memkit_async::main]
async fn main() -> Result<(), String> {
    let n: u32 = "not a number";
    Ok(n)
}
