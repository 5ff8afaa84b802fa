//! `shop`: an online store. Each person has a cart; placing an order moves the cart into an order
//! paid with one of their cards and shipped to one of their addresses (ids from `supervisor`).

use rand::Rng;
use rand::seq::index;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{
    ApiError, ApiResult, ApiSpec, Call, Constraint, ParamType, account_apis, cents, check_owner,
    matches, opt, page_params, paginate, req,
};
use crate::db::{CartItem, Db, Id, Order, OrderLine, Product, Review};
use crate::time;

const APP: &str = "shop";

/// Product categories.
const CATEGORIES: &[&str] = &[
    "electronics",
    "books",
    "kitchen",
    "sports",
    "toys",
    "clothing",
];

/// Products per category (same order as `CATEGORIES`) with a typical price in dollars.
const PRODUCTS: [&[(&str, u32)]; 6] = [
    &[
        ("Wireless Earbuds", 60),
        ("USB-C Charger", 20),
        ("Bluetooth Speaker", 45),
        ("Smart Watch", 180),
        ("Laptop Stand", 35),
        ("Mechanical Keyboard", 90),
        ("HD Webcam", 50),
        ("Power Bank", 30),
        ("Noise-Cancelling Headphones", 220),
        ("Portable SSD", 110),
    ],
    &[
        ("The Silent Coast", 16),
        ("Cooking for Two", 25),
        ("A Short History of Maps", 20),
        ("The Last Orchard", 15),
        ("Learn Python Fast", 35),
        ("Night Trains", 14),
        ("Garden Basics", 18),
        ("The Glass Detective", 13),
        ("Mindful Mornings", 17),
        ("Stars Above Us", 22),
    ],
    &[
        ("Chef's Knife", 45),
        ("Cast Iron Skillet", 35),
        ("French Press", 25),
        ("Electric Kettle", 40),
        ("Cutting Board", 20),
        ("Blender", 80),
        ("Measuring Cups", 12),
        ("Nonstick Pan", 30),
        ("Spice Rack", 28),
        ("Toaster", 50),
    ],
    &[
        ("Yoga Mat", 25),
        ("Running Shoes", 95),
        ("Water Bottle", 15),
        ("Tennis Racket", 70),
        ("Resistance Bands", 18),
        ("Cycling Helmet", 55),
        ("Jump Rope", 10),
        ("Dumbbell Set", 85),
        ("Hiking Backpack", 75),
        ("Soccer Ball", 22),
    ],
    &[
        ("Building Blocks Set", 40),
        ("1000-Piece Puzzle", 18),
        ("Remote Control Car", 45),
        ("Plush Bear", 15),
        ("Board Game Night", 30),
        ("Stunt Kite", 25),
        ("Art Kit", 20),
        ("Toy Train Set", 55),
        ("Magic Cube", 10),
        ("Dollhouse", 90),
    ],
    &[
        ("Rain Jacket", 70),
        ("Wool Sweater", 60),
        ("Denim Jeans", 50),
        ("Cotton T-Shirt", 15),
        ("Winter Gloves", 20),
        ("Baseball Cap", 18),
        ("Running Shorts", 25),
        ("Knit Scarf", 22),
        ("Hoodie", 40),
        ("Leather Belt", 30),
    ],
];

/// Review texts by rating (index 0 for 1 star).
const REVIEW_TEXTS: [&[&str]; 5] = [
    &["Broke after a week.", "Very disappointed."],
    &["Not worth the price.", "Below expectations."],
    &["It's okay.", "Does the job, nothing special."],
    &["Good quality, would buy again.", "Works well."],
    &["Excellent, highly recommend!", "Love it!"],
];

pub(super) fn apis() -> Vec<ApiSpec> {
    let [login, logout] = account_apis(APP);
    let product_id = || req("product_id", ParamType::Int, "Id of the product.");
    let order_id = || req("order_id", ParamType::Int, "Id of the order.");
    let quantity = |default: Option<i64>| {
        let p = match default {
            Some(d) => opt("quantity", ParamType::Int, json!(d), "How many."),
            None => req("quantity", ParamType::Int, "How many."),
        };
        p.with(Constraint::Min(1.0)).with(Constraint::Max(100.0))
    };
    vec![
        login,
        logout,
        ApiSpec::new(APP, "search_products", "GET", "/products")
            .doc("Search products. Filters combine; results in id order unless sort_by is given.")
            .params([
                opt("query", ParamType::Str, Value::Null, "Words in the product name."),
                opt("category", ParamType::Str, Value::Null, "Only this category.").with(Constraint::OneOf(CATEGORIES)),
                opt("max_price", ParamType::Float, Value::Null, "Highest price.").with(Constraint::Min(0.0)),
                opt("min_rating", ParamType::Float, Value::Null, "Lowest rating (0-5).")
                    .with(Constraint::Min(0.0))
                    .with(Constraint::Max(5.0)),
                opt("sort_by", ParamType::Str, Value::Null, "'price' (cheapest first), 'rating' (best first) or 'name' (A-Z).")
                    .with(Constraint::OneOf(&["price", "rating", "name"])),
            ])
            .params(page_params())
            .returns(r#"[{"product_id":1,"name":"string","price":19.99,"rating":4.5}]"#)
            .handler(search_products),
        ApiSpec::new(APP, "show_product", "GET", "/products/{product_id}")
            .doc("Show one product with its category and the count and average of its reviews.")
            .params([product_id()])
            .returns(r#"{"product_id":1,"name":"string","category":"string","price":19.99,"rating":4.5,"review_count":2,"review_average":4.5}"#)
            .handler(|call| {
                let p = product(call)?;
                let ratings: Vec<f64> = call
                    .world
                    .db
                    .reviews
                    .iter()
                    .filter(|r| r.product_id == p.id)
                    .map(|r| f64::from(r.rating))
                    .collect();
                let average =
                    if ratings.is_empty() { Value::Null } else { json!(cents(ratings.iter().sum::<f64>() / ratings.len() as f64)) };
                Ok(json!({
                    "product_id": p.id, "name": p.name, "category": p.category, "price": p.price, "rating": p.rating,
                    "review_count": ratings.len(), "review_average": average,
                }))
            }),
        ApiSpec::new(APP, "add_to_cart", "POST", "/cart/{product_id}")
            .doc("Add a product to your cart (adds to the quantity if it is already there).")
            .params([product_id(), quantity(Some(1))])
            .returns(r#"{"message":"string","quantity":1}"#)
            .handler(|call| {
                let pid = product(call)?.id;
                let me = call.user();
                let add = call.args.int("quantity") as u32;
                let db = &mut call.world.db;
                let existing = db.cart_items.iter().find(|c| c.owner_id == me && c.product_id == pid).map(|c| c.id);
                let quantity = match existing.and_then(|id| db.cart_items.get_mut(id)) {
                    Some(item) => {
                        item.quantity += add;
                        item.quantity
                    }
                    None => {
                        db.cart_items.insert(CartItem { id: 0, owner_id: me, product_id: pid, quantity: add });
                        add
                    }
                };
                Ok(json!({"message": "Added to your cart.", "quantity": quantity}))
            }),
        ApiSpec::new(APP, "show_cart", "GET", "/cart")
            .doc("Show your cart: each product with quantity and unit price, and the total.")
            .returns(r#"{"items":[{"product_id":1,"name":"string","quantity":1,"price":19.99}],"total":19.99}"#)
            .handler(|call| {
                let me = call.user();
                let db = &call.world.db;
                let lines = cart_lines(db, me);
                let items: Vec<Value> = lines
                    .iter()
                    .map(|l| json!({"product_id": l.product_id, "name": product_name(db, l.product_id), "quantity": l.quantity, "price": l.price}))
                    .collect();
                Ok(json!({"items": items, "total": total(&lines)}))
            }),
        ApiSpec::new(APP, "update_cart_item", "PATCH", "/cart/{product_id}")
            .doc("Set the quantity of a product in your cart.")
            .params([product_id(), quantity(None)])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                let quantity = call.args.int("quantity") as u32;
                cart_item_mut(call)?.quantity = quantity;
                Ok(json!({"message": "Cart updated."}))
            }),
        ApiSpec::new(APP, "remove_from_cart", "DELETE", "/cart/{product_id}")
            .doc("Remove a product from your cart.")
            .params([product_id()])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                let id = cart_item_mut(call)?.id;
                call.world.db.cart_items.remove(id);
                Ok(json!({"message": "Removed from your cart."}))
            }),
        ApiSpec::new(APP, "place_order", "POST", "/orders")
            .doc("Order everything in your cart, shipped to one of your addresses and paid with one of your cards (ids from apis.supervisor.show_addresses and show_payment_cards). Empties the cart.")
            .params([
                req("address_id", ParamType::Int, "Id of your shipping address."),
                req("card_id", ParamType::Int, "Id of your payment card."),
            ])
            .returns(r#"{"message":"string","order_id":1,"total":19.99}"#)
            .handler(|call| {
                let me = call.user();
                let db = &call.world.db;
                let address_id = call.args.id("address_id");
                let address = db.addresses.get(address_id).ok_or_else(|| ApiError::not_found(format!("No address with id {address_id}.")))?;
                check_owner(address.owner_id, me, "address", address_id)?;
                let card_id = call.args.id("card_id");
                let card = db.payment_cards.get(card_id).ok_or_else(|| ApiError::not_found(format!("No payment card with id {card_id}.")))?;
                check_owner(card.owner_id, me, "payment card", card_id)?;
                let lines = cart_lines(db, me);
                if lines.is_empty() {
                    return Err(ApiError::conflict("Your cart is empty."));
                }
                let total = total(&lines);
                let items: Vec<Id> = db.cart_items.iter().filter(|c| c.owner_id == me).map(|c| c.id).collect();
                let order = Order {
                    id: 0,
                    owner_id: me,
                    lines,
                    total,
                    status: "placed".into(),
                    address_id,
                    card_id,
                    created_at: call.world.now.clone(),
                };
                let db = &mut call.world.db;
                for id in items {
                    db.cart_items.remove(id);
                }
                let id = db.orders.insert(order);
                Ok(json!({"message": "Order placed.", "order_id": id, "total": total}))
            }),
        ApiSpec::new(APP, "show_orders", "GET", "/orders")
            .doc("List your orders, newest first.")
            .params([opt("status", ParamType::Str, Value::Null, "Only orders with this status.")
                .with(Constraint::OneOf(&["placed", "delivered", "cancelled"]))])
            .params(page_params())
            .returns(r#"[{"order_id":1,"status":"placed","total":19.99,"created_at":"string"}]"#)
            .handler(|call| {
                let me = call.user();
                let status = call.args.opt_str("status");
                let mut orders: Vec<&Order> = call
                    .world
                    .db
                    .orders
                    .iter()
                    .filter(|o| o.owner_id == me && status.is_none_or(|s| o.status == s))
                    .collect();
                orders.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
                let rows: Vec<Value> = paginate(orders, call.args.page())
                    .into_iter()
                    .map(|o| json!({"order_id": o.id, "status": o.status, "total": o.total, "created_at": o.created_at}))
                    .collect();
                Ok(rows.into())
            }),
        ApiSpec::new(APP, "show_order", "GET", "/orders/{order_id}")
            .doc("Show one of your orders with its products.")
            .params([order_id()])
            .returns(r#"{"order_id":1,"status":"placed","created_at":"string","total":19.99,"address_id":1,"card_id":1,"lines":[{"product_id":1,"name":"string","quantity":1,"price":19.99}]}"#)
            .handler(|call| {
                let o = order(call)?;
                let db = &call.world.db;
                let lines: Vec<Value> = o
                    .lines
                    .iter()
                    .map(|l| json!({"product_id": l.product_id, "name": product_name(db, l.product_id), "quantity": l.quantity, "price": l.price}))
                    .collect();
                Ok(json!({
                    "order_id": o.id, "status": o.status, "created_at": o.created_at, "total": o.total,
                    "address_id": o.address_id, "card_id": o.card_id, "lines": lines,
                }))
            }),
        ApiSpec::new(APP, "cancel_order", "POST", "/orders/{order_id}/cancel")
            .doc("Cancel one of your orders that is still 'placed' (not yet delivered).")
            .params([order_id()])
            .returns(r#"{"message":"string"}"#)
            .handler(|call| {
                let o = order(call)?;
                if o.status != "placed" {
                    return Err(ApiError::conflict(format!(
                        "Order {} is {}; only placed orders can be cancelled.",
                        o.id, o.status
                    )));
                }
                let id = o.id;
                call.world.db.orders.get_mut(id).expect("checked above").status = "cancelled".into();
                Ok(json!({"message": "Order cancelled."}))
            }),
        ApiSpec::new(APP, "write_review", "POST", "/products/{product_id}/reviews")
            .doc("Review a product you ordered (one review per product).")
            .params([
                product_id(),
                req("rating", ParamType::Int, "Stars, 1 to 5.").with(Constraint::Min(1.0)).with(Constraint::Max(5.0)),
                opt("text", ParamType::Str, json!(""), "What you think of it."),
            ])
            .returns(r#"{"message":"string","review_id":1}"#)
            .handler(|call| {
                let pid = product(call)?.id;
                let me = call.user();
                let db = &call.world.db;
                let ordered = db
                    .orders
                    .iter()
                    .any(|o| o.owner_id == me && o.status != "cancelled" && o.lines.iter().any(|l| l.product_id == pid));
                if !ordered {
                    return Err(ApiError::conflict(format!("You can only review products you ordered; you never ordered product {pid}.")));
                }
                if db.reviews.iter().any(|r| r.owner_id == me && r.product_id == pid) {
                    return Err(ApiError::conflict(format!("You already reviewed product {pid}.")));
                }
                let review = Review {
                    id: 0,
                    owner_id: me,
                    product_id: pid,
                    rating: call.args.int("rating") as u8,
                    text: call.args.str("text").trim().to_owned(),
                };
                let id = call.world.db.reviews.insert(review);
                Ok(json!({"message": "Review posted.", "review_id": id}))
            }),
        ApiSpec::new(APP, "show_reviews", "GET", "/products/{product_id}/reviews")
            .doc("List the reviews of a product, newest first.")
            .params([product_id()])
            .params(page_params())
            .returns(r#"[{"review_id":1,"reviewer":"string","rating":5,"text":"string"}]"#)
            .handler(|call| {
                let pid = product(call)?.id;
                let db = &call.world.db;
                let reviews = db.reviews.iter().rev().filter(|r| r.product_id == pid);
                let rows: Vec<Value> = paginate(reviews, call.args.page())
                    .into_iter()
                    .map(|r| json!({"review_id": r.id, "reviewer": db.person(r.owner_id).email, "rating": r.rating, "text": r.text}))
                    .collect();
                Ok(rows.into())
            }),
    ]
}

fn search_products(call: &mut Call<'_>) -> ApiResult {
    let args = &call.args;
    let query = args.opt_str("query");
    let category = args.opt_str("category");
    let max_price = args.opt_num("max_price");
    let min_rating = args.opt_num("min_rating");
    let mut products: Vec<&Product> = call
        .world
        .db
        .products
        .iter()
        .filter(|p| {
            matches(query, &[&p.name])
                && category.is_none_or(|c| p.category == c)
                && max_price.is_none_or(|m| p.price <= m + 1e-9)
                && min_rating.is_none_or(|m| p.rating >= m - 1e-9)
        })
        .collect();
    match args.opt_str("sort_by") {
        Some("price") => products.sort_by(|a, b| a.price.total_cmp(&b.price).then(a.id.cmp(&b.id))),
        Some("rating") => {
            products.sort_by(|a, b| b.rating.total_cmp(&a.rating).then(a.id.cmp(&b.id)))
        }
        Some("name") => products.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id))),
        _ => {}
    }
    let rows: Vec<Value> = paginate(products, args.page())
        .into_iter()
        .map(|p| json!({"product_id": p.id, "name": p.name, "price": p.price, "rating": p.rating}))
        .collect();
    Ok(rows.into())
}

fn product<'a>(call: &'a Call<'_>) -> Result<&'a Product, ApiError> {
    let id = call.args.id("product_id");
    call.world
        .db
        .products
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("No product with id {id}.")))
}

fn product_name(db: &Db, id: Id) -> &str {
    db.products.get(id).map_or("", |p| p.name.as_str())
}

/// The caller's cart as order lines at current prices, in the order products were added.
fn cart_lines(db: &Db, owner: Id) -> Vec<OrderLine> {
    db.cart_items
        .iter()
        .filter(|c| c.owner_id == owner)
        .filter_map(|c| {
            db.products.get(c.product_id).map(|p| OrderLine {
                product_id: p.id,
                quantity: c.quantity,
                price: p.price,
            })
        })
        .collect()
}

fn total(lines: &[OrderLine]) -> f64 {
    // A fold from +0.0: an empty float `sum()` is -0.0, which would print as "-0.0".
    cents(
        lines
            .iter()
            .fold(0.0, |sum, l| sum + l.price * f64::from(l.quantity)),
    )
}

/// The caller's cart line for `product_id` (404 if no such product, 409 if not in the cart).
fn cart_item_mut<'a>(call: &'a mut Call<'_>) -> Result<&'a mut CartItem, ApiError> {
    let pid = product(call)?.id;
    let me = call.user();
    call.world
        .db
        .cart_items
        .iter_mut()
        .find(|c| c.owner_id == me && c.product_id == pid)
        .ok_or_else(|| ApiError::conflict(format!("Product {pid} is not in your cart.")))
}

fn order(call: &Call<'_>) -> Result<Order, ApiError> {
    let id = call.args.id("order_id");
    let o = call
        .world
        .db
        .orders
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("No order with id {id}.")))?;
    check_owner(o.owner_id, call.user(), "order", id)?;
    Ok(o.clone())
}

/// Seeds the catalogue, each person's past orders and some reviews of what they bought.
pub(super) fn populate(db: &mut Db, rng: &mut ChaCha8Rng, now: &str) {
    for (category, products) in CATEGORIES.iter().zip(PRODUCTS) {
        for (name, typical) in products {
            // Within ±25% of the typical price, ending in .99.
            let dollars = (typical * rng.random_range(75..=125)).div_ceil(100).max(2);
            db.products.insert(Product {
                id: 0,
                name: (*name).to_owned(),
                category: (*category).to_owned(),
                price: cents(f64::from(dollars) - 0.01),
                rating: f64::from(rng.random_range(25..=50)) / 10.0,
            });
        }
    }
    let product_ids: Vec<Id> = db.products.iter().map(|p| p.id).collect();
    let people: Vec<Id> = db.people.iter().map(|p| p.id).collect();
    let mut orders: Vec<(i64, u32, Order)> = Vec::new();
    for person in people {
        let addresses: Vec<Id> = db
            .addresses
            .iter()
            .filter(|a| a.owner_id == person)
            .map(|a| a.id)
            .collect();
        let cards: Vec<Id> = db
            .payment_cards
            .iter()
            .filter(|c| c.owner_id == person)
            .map(|c| c.id)
            .collect();
        for _ in 0..rng.random_range(1..=3) {
            let day = rng.random_range(-120..=-1);
            let hour = rng.random_range(8..22);
            let count = rng.random_range(1..=3);
            let lines: Vec<OrderLine> = index::sample(rng, product_ids.len(), count)
                .into_iter()
                .map(|i| {
                    let p = db.products.get(product_ids[i]).expect("listed above");
                    OrderLine {
                        product_id: p.id,
                        quantity: if rng.random_bool(0.8) { 1 } else { 2 },
                        price: p.price,
                    }
                })
                .collect();
            let order = Order {
                id: 0,
                owner_id: person,
                total: total(&lines),
                lines,
                status: if day >= -4 { "placed" } else { "delivered" }.into(),
                address_id: addresses[rng.random_range(0..addresses.len())],
                card_id: cards[rng.random_range(0..cards.len())],
                created_at: time::timestamp(now, day, hour, rng.random_range(0..60)),
            };
            orders.push((day, hour, order));
        }
    }
    orders.sort_by_key(|(day, hour, order)| (*day, *hour, order.owner_id));
    for (_, _, order) in orders {
        let reviewable: Vec<(Id, f64)> = if order.status == "delivered" {
            order
                .lines
                .iter()
                .map(|l| {
                    (
                        l.product_id,
                        db.products.get(l.product_id).map_or(3.0, |p| p.rating),
                    )
                })
                .collect()
        } else {
            vec![]
        };
        let owner = order.owner_id;
        db.orders.insert(order);
        for (product_id, rating) in reviewable {
            let reviewed = db
                .reviews
                .iter()
                .any(|r| r.owner_id == owner && r.product_id == product_id);
            if reviewed || !rng.random_bool(0.35) {
                continue;
            }
            let stars = (rating + f64::from(rng.random_range(-1..=1)))
                .round()
                .clamp(1.0, 5.0) as u8;
            let texts = REVIEW_TEXTS[usize::from(stars) - 1];
            let text = texts[rng.random_range(0..texts.len())].to_owned();
            db.reviews.insert(Review {
                id: 0,
                owner_id: owner,
                product_id,
                rating: stars,
                text,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::population::generate;
    use crate::world::World;

    fn world() -> World {
        let (db, now) = generate(3);
        World::new(db, now, 1)
    }

    fn call(w: &mut World, api: &str, args: Value) -> ApiResult {
        super::super::test_support::call(w, APP, api, args)
    }

    fn login(w: &mut World, person: Id) -> String {
        super::super::test_support::login(w, APP, person)
    }

    fn status(r: ApiResult) -> u16 {
        r.unwrap_err().status
    }

    /// The keys of an object, or of a list's first row.
    fn keys(v: &Value) -> Vec<String> {
        let object = if v.is_array() { &v[0] } else { v };
        object
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Every doc parses, and each read API's output has the keys its `returns` example shows.
    fn check_docs(w: &mut World, token: &str, count: usize, reads: &[(&str, Value)]) {
        let specs = apis();
        assert_eq!(specs.len(), count);
        for s in &specs {
            assert!(!s.description.is_empty(), "{}", s.name);
            serde_json::from_str::<Value>(s.returns).unwrap_or_else(|e| panic!("{}: {e}", s.name));
        }
        for (api, args) in reads {
            let mut args = args.clone();
            args["access_token"] = json!(token);
            let out = call(w, api, args).unwrap();
            let spec = specs.iter().find(|s| s.name == *api).unwrap();
            let example: Value = serde_json::from_str(spec.returns).unwrap();
            assert!(!keys(&out).is_empty(), "{api} returned no row");
            assert_eq!(keys(&out), keys(&example), "{api}");
        }
    }

    #[test]
    fn docs_match_outputs() {
        let mut w = world();
        let t = login(&mut w, 1);
        let order = w.db.orders.iter().find(|o| o.owner_id == 1).unwrap().id;
        let reviewed = w.db.reviews.iter().next().unwrap().product_id;
        let reads = [
            ("search_products", json!({})),
            ("show_product", json!({"product_id": 1})),
            ("show_cart", json!({})),
            ("show_orders", json!({})),
            ("show_order", json!({"order_id": order})),
            ("show_reviews", json!({"product_id": reviewed})),
        ];
        check_docs(&mut w, &t, 14, &reads);
    }

    fn ids(v: &Value, key: &str) -> Vec<Id> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r[key].as_u64().unwrap() as Id)
            .collect()
    }

    fn first_address(w: &World, person: Id) -> Id {
        w.db.addresses
            .iter()
            .find(|a| a.owner_id == person)
            .unwrap()
            .id
    }

    fn first_card(w: &World, person: Id) -> Id {
        w.db.payment_cards
            .iter()
            .find(|c| c.owner_id == person)
            .unwrap()
            .id
    }

    #[test]
    fn population_is_plausible() {
        let (db, _) = generate(3);
        assert_eq!(db.products.len(), 60);
        for p in db.products.iter() {
            assert!((2.5..=5.0).contains(&p.rating) && (p.rating * 10.0).fract() == 0.0);
            assert!(CATEGORIES.contains(&p.category.as_str()) && p.price > 0.0);
        }
        assert!(db.cart_items.is_empty());
        for person in db.people.iter() {
            let orders: Vec<&Order> = db
                .orders
                .iter()
                .filter(|o| o.owner_id == person.id)
                .collect();
            assert!((1..=3).contains(&orders.len()));
            for o in orders {
                assert!(
                    (1..=3).contains(&o.lines.len())
                        && ["placed", "delivered"].contains(&o.status.as_str())
                );
                assert_eq!(db.addresses.get(o.address_id).unwrap().owner_id, person.id);
                assert_eq!(db.payment_cards.get(o.card_id).unwrap().owner_id, person.id);
                assert_eq!(o.total, total(&o.lines));
            }
        }
        assert!(!db.reviews.is_empty());
        for r in db.reviews.iter() {
            assert!(db.orders.iter().any(|o| o.owner_id == r.owner_id
                && o.lines.iter().any(|l| l.product_id == r.product_id)));
            assert_eq!(
                db.reviews
                    .iter()
                    .filter(|x| x.owner_id == r.owner_id && x.product_id == r.product_id)
                    .count(),
                1
            );
        }
    }

    #[test]
    fn login_and_tokens() {
        let mut w = world();
        let email = w.db.person(1).email.clone();
        assert_eq!(
            status(call(
                &mut w,
                "login",
                json!({"username": email, "password": "x"})
            )),
            401
        );
        let pw =
            w.db.accounts
                .iter()
                .find(|a| a.person_id == 1 && a.app == "music")
                .unwrap()
                .password
                .clone();
        let music = w.call(
            "music",
            "login",
            vec![],
            vec![
                ("username".into(), json!(email)),
                ("password".into(), json!(pw)),
            ],
        );
        let token = music.unwrap()["access_token"].as_str().unwrap().to_owned();
        assert_eq!(
            status(call(&mut w, "show_cart", json!({"access_token": token}))),
            401
        );
        let t = login(&mut w, 1);
        assert_eq!(
            call(&mut w, "show_cart", json!({"access_token": t})).unwrap(),
            json!({"items": [], "total": 0.0})
        );
    }

    #[test]
    fn search_filters_sorts_and_reads_change_nothing() {
        let mut w = world();
        let t = login(&mut w, 1);
        let before = w.db.clone();
        let cheap: Vec<&Product> =
            w.db.products
                .iter()
                .filter(|p| p.category == "kitchen" && p.price <= 60.0)
                .collect();
        let expected: Vec<Id> = cheap.iter().map(|p| p.id).take(5).collect();
        let got = call(
            &mut w,
            "search_products",
            json!({"access_token": t, "category": "kitchen", "max_price": 60}),
        )
        .unwrap();
        assert_eq!(ids(&got, "product_id"), expected);
        let mut by_price: Vec<&Product> = w.db.products.iter().collect();
        by_price.sort_by(|a, b| a.price.total_cmp(&b.price).then(a.id.cmp(&b.id)));
        let expected: Vec<Id> = by_price[3..6].iter().map(|p| p.id).collect();
        let got = call(
            &mut w,
            "search_products",
            json!({"access_token": t, "sort_by": "price", "page_index": 1, "page_limit": 3}),
        )
        .unwrap();
        assert_eq!(ids(&got, "product_id"), expected);
        let good = w.db.products.iter().filter(|p| p.rating >= 4.5).count();
        let got = call(
            &mut w,
            "search_products",
            json!({"access_token": t, "min_rating": 4.5, "page_limit": 20}),
        )
        .unwrap();
        assert_eq!(got.as_array().unwrap().len(), good.min(20));
        let got = call(
            &mut w,
            "search_products",
            json!({"access_token": t, "query": "kettle"}),
        )
        .unwrap();
        assert_eq!(got[0]["name"], "Electric Kettle");
        assert_eq!(
            status(call(
                &mut w,
                "search_products",
                json!({"access_token": t, "category": "food"})
            )),
            422
        );
        assert_eq!(
            status(call(
                &mut w,
                "search_products",
                json!({"access_token": t, "sort_by": "cost"})
            )),
            422
        );
        let reviewed = w.db.reviews.iter().next().unwrap().product_id;
        let ratings: Vec<f64> =
            w.db.reviews
                .iter()
                .filter(|r| r.product_id == reviewed)
                .map(|r| f64::from(r.rating))
                .collect();
        let shown = call(
            &mut w,
            "show_product",
            json!({"access_token": t, "product_id": reviewed}),
        )
        .unwrap();
        assert_eq!(shown["review_count"], ratings.len());
        assert_eq!(
            shown["review_average"],
            cents(ratings.iter().sum::<f64>() / ratings.len() as f64)
        );
        let listed = call(
            &mut w,
            "show_reviews",
            json!({"access_token": t, "product_id": reviewed, "page_limit": 20}),
        )
        .unwrap();
        assert_eq!(listed.as_array().unwrap().len(), ratings.len());
        assert_eq!(
            status(call(
                &mut w,
                "show_product",
                json!({"access_token": t, "product_id": 61})
            )),
            404
        );
        call(&mut w, "show_orders", json!({"access_token": t})).unwrap();
        let mine = w.db.orders.iter().find(|o| o.owner_id == 1).unwrap().id;
        assert_eq!(
            status(call(
                &mut w,
                "show_order",
                json!({"access_token": t, "product_id": 1, "order_id": mine})
            )),
            422
        );
        let shown = call(
            &mut w,
            "show_order",
            json!({"access_token": t, "order_id": mine}),
        )
        .unwrap();
        assert_eq!(
            shown["lines"].as_array().unwrap().len(),
            w.db.orders.get(mine).unwrap().lines.len()
        );
        assert!(w.db.diff(&before).is_empty());
    }

    #[test]
    fn cart_and_orders() {
        let mut w = world();
        let t = login(&mut w, 1);
        let (address, card) = (first_address(&w, 1), first_card(&w, 1));
        assert_eq!(
            status(call(
                &mut w,
                "place_order",
                json!({"access_token": t, "address_id": address, "card_id": card})
            )),
            409
        );
        call(
            &mut w,
            "add_to_cart",
            json!({"access_token": t, "product_id": 7}),
        )
        .unwrap();
        let out = call(
            &mut w,
            "add_to_cart",
            json!({"access_token": t, "product_id": 7, "quantity": 2}),
        )
        .unwrap();
        assert_eq!(out["quantity"], 3);
        call(
            &mut w,
            "add_to_cart",
            json!({"access_token": t, "product_id": 12}),
        )
        .unwrap();
        call(
            &mut w,
            "add_to_cart",
            json!({"access_token": t, "product_id": 30}),
        )
        .unwrap();
        assert_eq!(
            status(call(
                &mut w,
                "add_to_cart",
                json!({"access_token": t, "product_id": 3, "quantity": 0})
            )),
            422
        );
        assert_eq!(
            status(call(
                &mut w,
                "add_to_cart",
                json!({"access_token": t, "product_id": 999})
            )),
            404
        );
        call(
            &mut w,
            "update_cart_item",
            json!({"access_token": t, "product_id": 12, "quantity": 4}),
        )
        .unwrap();
        call(
            &mut w,
            "remove_from_cart",
            json!({"access_token": t, "product_id": 30}),
        )
        .unwrap();
        assert_eq!(
            status(call(
                &mut w,
                "remove_from_cart",
                json!({"access_token": t, "product_id": 30})
            )),
            409
        );
        assert_eq!(
            status(call(
                &mut w,
                "update_cart_item",
                json!({"access_token": t, "product_id": 30, "quantity": 1})
            )),
            409
        );
        let price = |w: &World, id: Id| w.db.products.get(id).unwrap().price;
        let expected = cents(price(&w, 7) * 3.0 + price(&w, 12) * 4.0);
        let cart = call(&mut w, "show_cart", json!({"access_token": t})).unwrap();
        assert_eq!(ids(&cart["items"], "product_id"), [7, 12]);
        assert_eq!(
            (cart["items"][0]["quantity"].clone(), cart["total"].clone()),
            (json!(3), json!(expected))
        );

        // Someone else's address or card, or a missing one.
        let other_address = first_address(&w, 2);
        let other_card = first_card(&w, 2);
        assert_eq!(
            status(call(
                &mut w,
                "place_order",
                json!({"access_token": t, "address_id": other_address, "card_id": card})
            )),
            401
        );
        assert_eq!(
            status(call(
                &mut w,
                "place_order",
                json!({"access_token": t, "address_id": address, "card_id": other_card})
            )),
            401
        );
        assert_eq!(
            status(call(
                &mut w,
                "place_order",
                json!({"access_token": t, "address_id": address, "card_id": 999})
            )),
            404
        );

        let before = w.db.clone();
        let out = call(
            &mut w,
            "place_order",
            json!({"access_token": t, "address_id": address, "card_id": card}),
        )
        .unwrap();
        let id = out["order_id"].as_u64().unwrap() as Id;
        assert_eq!(out["total"], expected);
        assert!(w.db.cart_items.iter().all(|c| c.owner_id != 1));
        let o = w.db.orders.get(id).unwrap();
        assert_eq!(
            (
                o.status.as_str(),
                o.total,
                o.address_id,
                o.card_id,
                o.created_at.clone()
            ),
            ("placed", expected, address, card, w.now.clone())
        );
        assert_eq!(
            o.lines
                .iter()
                .map(|l| (l.product_id, l.quantity))
                .collect::<Vec<_>>(),
            [(7, 3), (12, 4)]
        );
        let changes = w.db.diff(&before);
        assert_eq!(
            (
                changes.len(),
                changes.iter().filter(|c| c.table == "cart_items").count()
            ),
            (3, 2)
        );
        let listed = call(
            &mut w,
            "show_orders",
            json!({"access_token": t, "status": "placed", "page_limit": 1}),
        )
        .unwrap();
        assert_eq!(ids(&listed, "order_id"), [id]);

        call(
            &mut w,
            "cancel_order",
            json!({"access_token": t, "order_id": id}),
        )
        .unwrap();
        assert_eq!(w.db.orders.get(id).unwrap().status, "cancelled");
        assert_eq!(
            status(call(
                &mut w,
                "cancel_order",
                json!({"access_token": t, "order_id": id})
            )),
            409
        );
        assert_eq!(
            status(call(
                &mut w,
                "cancel_order",
                json!({"access_token": t, "order_id": 9999})
            )),
            404
        );
        let foreign = w.db.orders.iter().find(|o| o.owner_id != 1).unwrap().id;
        let err = call(
            &mut w,
            "cancel_order",
            json!({"access_token": t, "order_id": foreign}),
        )
        .unwrap_err();
        assert_eq!(err.status, 401);
        assert!(err.message.contains("another user"));
        let delivered =
            w.db.orders
                .iter()
                .find(|o| o.owner_id == 1 && o.status == "delivered")
                .map(|o| o.id);
        if let Some(delivered) = delivered {
            assert_eq!(
                status(call(
                    &mut w,
                    "cancel_order",
                    json!({"access_token": t, "order_id": delivered})
                )),
                409
            );
        }
    }

    #[test]
    fn reviews_need_an_order_and_are_unique() {
        let mut w = world();
        let t = login(&mut w, 1);
        let ordered: Vec<Id> =
            w.db.orders
                .iter()
                .filter(|o| o.owner_id == 1 && o.status != "cancelled")
                .flat_map(|o| o.lines.iter().map(|l| l.product_id))
                .collect();
        let never = (1..=60).find(|p| !ordered.contains(p)).unwrap();
        let fresh = *ordered
            .iter()
            .find(|p| {
                !w.db
                    .reviews
                    .iter()
                    .any(|r| r.owner_id == 1 && r.product_id == **p)
            })
            .expect("person 1 has an unreviewed product");
        assert_eq!(
            status(call(
                &mut w,
                "write_review",
                json!({"access_token": t, "product_id": never, "rating": 4})
            )),
            409
        );
        assert_eq!(
            status(call(
                &mut w,
                "write_review",
                json!({"access_token": t, "product_id": fresh, "rating": 6})
            )),
            422
        );
        let before = w.db.clone();
        let out = call(
            &mut w,
            "write_review",
            json!({"access_token": t, "product_id": fresh, "rating": 2, "text": "Too loud."}),
        )
        .unwrap();
        let rid = out["review_id"].as_u64().unwrap() as Id;
        assert_eq!(
            w.db.reviews.get(rid).unwrap(),
            &Review {
                id: rid,
                owner_id: 1,
                product_id: fresh,
                rating: 2,
                text: "Too loud.".into()
            }
        );
        assert_eq!(w.db.diff(&before).len(), 1);
        assert_eq!(
            status(call(
                &mut w,
                "write_review",
                json!({"access_token": t, "product_id": fresh, "rating": 3})
            )),
            409
        );
        let listed = call(
            &mut w,
            "show_reviews",
            json!({"access_token": t, "product_id": fresh, "page_limit": 1}),
        )
        .unwrap();
        assert_eq!(listed[0]["review_id"], rid);
        assert_eq!(listed[0]["reviewer"], w.db.person(1).email);
    }
}
