//! `search-sql Q SORT [CANDIDATES]`: the statement catalog-order runs for `GET /v1/items?q=Q&
//! sort=SORT&limit=20` (`store::items::page_query`), for pgbench: its one parameter, the text
//! search query, written as `:q`. Prints `q=<tsquery>` on the first line and the SQL on the
//! rest, so that `bench/search.sh` replays exactly what the service runs.

use catalog_order::domain::SearchText;
use catalog_order::store::items::{Candidates, ItemFilter, ItemSort, page_query};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (q, sort, candidates) = match args.as_slice() {
        [_, q, sort] => (q, sort, Candidates::default()),
        [_, q, sort, n] => (q, sort, Candidates(n.parse()?)),
        _ => anyhow::bail!("usage: search-sql Q SORT [CANDIDATES]"),
    };
    let sort = match sort.as_str() {
        "relevance" => ItemSort::Relevance,
        "-created_at" => ItemSort::NewestFirst,
        "price" => ItemSort::PriceAsc,
        "-price" => ItemSort::PriceDesc,
        "name" => ItemSort::NameAsc,
        other => anyhow::bail!("unknown sort {other}"),
    };
    let text = SearchText::parse(q)
        .map_err(|e| anyhow::anyhow!("q {e}"))?
        .ok_or_else(|| anyhow::anyhow!("q has no words"))?;
    let filter = ItemFilter {
        q: Some(text.clone()),
        ..ItemFilter::default()
    };
    let query = page_query("", &filter, sort, None, 20, candidates).map_err(anyhow::Error::msg)?;
    let sql = query.sql().as_str().replace("$1", ":q");
    anyhow::ensure!(
        !sql.contains("$2"),
        "the statement has more than one parameter"
    );
    println!("q={}", text.tsquery());
    println!("{sql};");
    Ok(())
}
