//! GetRandomPassword.

mod common;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::operation::get_random_password::builders::GetRandomPasswordFluentBuilder;
use common::*;

const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
/// Long enough that every allowed character shows up (94 characters, ~43 draws each).
const LONG: i64 = 4096;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Class {
    Upper,
    Lower,
    Digit,
    Punct,
    Space,
}

fn class(c: char) -> Class {
    match c {
        'A'..='Z' => Class::Upper,
        'a'..='z' => Class::Lower,
        '0'..='9' => Class::Digit,
        ' ' => Class::Space,
        c if PUNCTUATION.contains(c) => Class::Punct,
        other => panic!("character {other:?} is outside every allowed class"),
    }
}

fn has(password: &str, cls: Class) -> bool {
    password.chars().any(|c| class(c) == cls)
}

async fn setup() -> (Server, Client) {
    let server = Server::start().await;
    let client = server.client().await;
    (server, client)
}

async fn password(request: GetRandomPasswordFluentBuilder) -> String {
    ok(request.send().await)
        .random_password()
        .expect("no RandomPassword")
        .to_string()
}

/// Asserts the classes present in a long password: exactly `present`, none of the others.
fn assert_classes(password: &str, present: &[Class]) {
    for cls in [
        Class::Upper,
        Class::Lower,
        Class::Digit,
        Class::Punct,
        Class::Space,
    ] {
        assert_eq!(
            has(password, cls),
            present.contains(&cls),
            "{cls:?} in {password:?}"
        );
    }
}

const ALL_BUT_SPACE: &[Class] = &[Class::Upper, Class::Lower, Class::Digit, Class::Punct];

#[tokio::test]
async fn default_password_is_32_chars_with_every_type() {
    let (_server, client) = setup().await;
    for _ in 0..5 {
        let pw = password(client.get_random_password()).await;
        assert_eq!(pw.chars().count(), 32, "{pw:?}");
        assert_classes(&pw, ALL_BUT_SPACE);
    }
}

#[tokio::test]
async fn long_password_uses_the_whole_default_alphabet() {
    let (_server, client) = setup().await;
    let pw = password(client.get_random_password().password_length(LONG)).await;
    assert_eq!(pw.chars().count(), LONG as usize);
    assert_classes(&pw, ALL_BUT_SPACE);
    for c in PUNCTUATION.chars() {
        assert!(
            pw.contains(c),
            "punctuation {c:?} never drawn in {LONG} characters"
        );
    }
}

#[tokio::test]
async fn shortest_passwords_still_contain_each_type() {
    let (_server, client) = setup().await;
    for _ in 0..20 {
        let pw = password(client.get_random_password().password_length(4)).await;
        assert_eq!(pw.chars().count(), 4);
        assert_classes(&pw, ALL_BUT_SPACE);
    }
}

#[tokio::test]
async fn length_bounds() {
    let (_server, client) = setup().await;
    // Length 1 cannot hold one character of each type, so it needs RequireEachIncludedType=false.
    let one = client
        .get_random_password()
        .password_length(1)
        .require_each_included_type(false);
    assert_eq!(password(one).await.chars().count(), 1);
    let max = password(client.get_random_password().password_length(4096)).await;
    assert_eq!(max.chars().count(), 4096);
    for bad in [0, 4097] {
        assert_validation_err(
            client
                .get_random_password()
                .password_length(bad)
                .send()
                .await,
        );
    }
}

#[tokio::test]
async fn exclude_characters_is_respected() {
    let (_server, client) = setup().await;
    let excluded = "abcdefABCDEF0123456789!@#$%";
    let request = client
        .get_random_password()
        .password_length(LONG)
        .exclude_characters(excluded);
    let pw = password(request).await;
    assert_eq!(pw.chars().count(), LONG as usize);
    for c in excluded.chars() {
        assert!(!pw.contains(c), "excluded {c:?} in the password");
    }
    assert_classes(&pw, &[Class::Upper, Class::Lower, Class::Punct]);
}

#[tokio::test]
async fn exclude_numbers() {
    let (_server, client) = setup().await;
    let pw = password(
        client
            .get_random_password()
            .password_length(LONG)
            .exclude_numbers(true),
    )
    .await;
    assert_classes(&pw, &[Class::Upper, Class::Lower, Class::Punct]);
}

#[tokio::test]
async fn exclude_punctuation() {
    let (_server, client) = setup().await;
    let pw = password(
        client
            .get_random_password()
            .password_length(LONG)
            .exclude_punctuation(true),
    )
    .await;
    assert_classes(&pw, &[Class::Upper, Class::Lower, Class::Digit]);
}

#[tokio::test]
async fn exclude_uppercase() {
    let (_server, client) = setup().await;
    let pw = password(
        client
            .get_random_password()
            .password_length(LONG)
            .exclude_uppercase(true),
    )
    .await;
    assert_classes(&pw, &[Class::Lower, Class::Digit, Class::Punct]);
}

#[tokio::test]
async fn exclude_lowercase() {
    let (_server, client) = setup().await;
    let pw = password(
        client
            .get_random_password()
            .password_length(LONG)
            .exclude_lowercase(true),
    )
    .await;
    assert_classes(&pw, &[Class::Upper, Class::Digit, Class::Punct]);
}

#[tokio::test]
async fn include_space() {
    let (_server, client) = setup().await;
    let pw = password(
        client
            .get_random_password()
            .password_length(LONG)
            .include_space(true),
    )
    .await;
    assert_classes(
        &pw,
        &[
            Class::Upper,
            Class::Lower,
            Class::Digit,
            Class::Punct,
            Class::Space,
        ],
    );
}

#[tokio::test]
async fn only_digits_when_everything_else_is_excluded() {
    let (_server, client) = setup().await;
    let request = client
        .get_random_password()
        .password_length(64)
        .exclude_uppercase(true)
        .exclude_lowercase(true)
        .exclude_punctuation(true);
    let pw = password(request).await;
    assert_eq!(pw.len(), 64);
    assert!(pw.bytes().all(|b| b.is_ascii_digit()), "{pw:?}");
}

#[tokio::test]
async fn excluding_every_type_is_refused() {
    let (_server, client) = setup().await;
    let request = client
        .get_random_password()
        .exclude_uppercase(true)
        .exclude_lowercase(true)
        .exclude_numbers(true)
        .exclude_punctuation(true);
    assert_api_err(request.send().await, "InvalidParameterException", None);
}

#[tokio::test]
async fn passwords_differ() {
    let (_server, client) = setup().await;
    let a = password(client.get_random_password()).await;
    let b = password(client.get_random_password()).await;
    assert_ne!(a, b);
}
