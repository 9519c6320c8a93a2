//! Types that cannot hold invalid values: parse once at the edge, trust afterwards.

mod email;
mod password;
mod refresh_token;

pub use email::Email;
pub use password::{MAX_LEN as PASSWORD_MAX_LEN, Password};
pub use refresh_token::{RefreshToken, RefreshTokenHash};
