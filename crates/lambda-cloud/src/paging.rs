//! Following page tokens to the end of a paged listing.

use std::future::Future;

use crate::error::Result;
use crate::ids::PageToken;

/// Fetches pages with `fetch` (given the previous page's token, `None` first) until a page
/// has no next token, and returns every item.
pub(crate) async fn collect_pages<T, F, Fut>(mut fetch: F) -> Result<Vec<T>>
where
    F: FnMut(Option<PageToken>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<PageToken>)>>,
{
    let mut items = Vec::new();
    let mut token: Option<PageToken> = None;
    loop {
        let (page, next) = fetch(token.clone()).await?;
        items.extend(page);
        match next {
            // A server that hands back the token it was given would page forever.
            Some(next) if Some(&next) != token.as_ref() => token = Some(next),
            _ => return Ok(items),
        }
    }
}
