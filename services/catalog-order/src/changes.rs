//! What the public catalog reads depend on and what each write touches, as the response cache's
//! tags (`platform::cache`): routes are cached by [`tags_of_route`]; a use case announces its
//! tags with `state.cache.changed(..)` once its transaction has committed.

use uuid::Uuid;

/// Categories: their lists and pages, and the slugs that lists filter by and facets show.
pub const CATEGORIES: &str = "categories";
/// Every item list and facet count: any item change may move an item into or out of any of them.
pub const ITEMS: &str = "items";
/// Every image list (processing events name an image, not its item).
pub const IMAGES: &str = "images";

/// One item's page (and its image list, which is not found once the item is inactive).
pub fn item(id: Uuid) -> String {
    format!("item:{id}")
}

/// What a change of these items (fields, stock, activity) touches.
pub fn of_items(ids: impl IntoIterator<Item = Uuid>) -> Vec<String> {
    std::iter::once(ITEMS.to_owned())
        .chain(ids.into_iter().map(item))
        .collect()
}

/// The tags the response of a public catalog GET depends on; `None` for every other route
/// (orders, customers, jobs, image bytes: personal, or cached by URL already).
pub fn tags_of_route(route: &str, path: &str) -> Option<Vec<String>> {
    // `/v1/items/{id}…`: the id as the writers spell it (an unparsable one is a 400, not cached).
    let id = || path.split('/').nth(3)?.parse::<Uuid>().ok();
    match route {
        "/v1/categories" | "/v1/categories/{id}" => Some(vec![CATEGORIES.to_owned()]),
        "/v1/items" | "/v1/items/facets" => Some(vec![ITEMS.to_owned(), CATEGORIES.to_owned()]),
        "/v1/items/{id}" => Some(vec![item(id()?)]),
        "/v1/items/{id}/images" => Some(vec![IMAGES.to_owned(), item(id()?)]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_depend_on_what_their_writers_announce() {
        let id = Uuid::now_v7();
        let page = tags_of_route("/v1/items/{id}", &format!("/v1/items/{id}"));
        assert_eq!(page, Some(vec![item(id)]));
        // Spelled in upper case, the id is still the item's tag.
        let upper = format!("/v1/items/{}", id.to_string().to_uppercase());
        assert_eq!(
            tags_of_route("/v1/items/{id}", &upper),
            Some(vec![item(id)])
        );
        let lists = tags_of_route("/v1/items", "/v1/items").unwrap_or_default();
        assert!(
            of_items([id])
                .iter()
                .all(|t| lists.contains(t) || *t == item(id))
        );
        assert_eq!(tags_of_route("/v1/items/{id}", "/v1/items/nope"), None);
        assert_eq!(tags_of_route("/v1/orders", "/v1/orders"), None);
        assert_eq!(tags_of_route("/v1/customers/me", "/v1/customers/me"), None);
    }
}
