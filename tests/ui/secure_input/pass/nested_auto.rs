use secure_api_runtime::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;

#[derive(serde::Deserialize, SecureInput)]
struct Address {
    #[secure(trim, length(min = 1, max = 64))]
    street: String,
}

#[derive(serde::Deserialize)]
struct Plain {
    note: String,
}

/// Concrete fields: validated when their type implements `SecureInput`, left alone when
/// it does not; maps and shared pointers of plain types are fine.
#[derive(serde::Deserialize, SecureInput)]
struct Concrete {
    address: Address,
    maybe: Option<Address>,
    many: Vec<Address>,
    boxed: Box<Address>,
    grid: Vec<Vec<Option<Address>>>,
    fixed: [Address; 2],
    plain: Plain,
    plain_list: Vec<Plain>,
    counts: HashMap<String, u32>,
    notes: BTreeMap<String, Plain>,
    #[secure(skip)]
    trusted: HashMap<String, Address>,
    #[secure(skip, length(max = 3))]
    unchecked: Vec<Address>,
}

/// Generic fields say what they want.
#[derive(serde::Deserialize, SecureInput)]
struct Envelope<T, U> {
    #[secure(nested)]
    payload: T,
    #[secure(length(max = 10), each(nested))]
    items: Vec<T>,
    #[secure(skip)]
    meta: Option<U>,
    #[serde(skip)]
    marker: PhantomData<U>,
}

fn main() {
    fn assert_secure<T: SecureInput>() {}
    assert_secure::<Concrete>();
    assert_secure::<Envelope<Address, Plain>>();
}
