//! Types that cannot hold invalid values: parse once at the edge, trust afterwards.

mod account_token;
mod email;
mod password;
mod refresh_token;

pub use account_token::{AccountToken, AccountTokenHash, LinkBase, TokenPurpose};
pub use email::Email;
pub use password::{MAX_LEN as PASSWORD_MAX_LEN, Password};
pub use refresh_token::{RefreshToken, RefreshTokenHash};
