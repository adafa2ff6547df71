//! Ethereum V3 keystore files (the format geth, SmartRaiden and MetaMask write): decrypt with a
//! password, or encrypt a key into a new file.

use super::PrivateKey;
use super::keys::KeyError;
use crate::crypto::keccak256;
use aes::cipher::{KeyIvInit, StreamCipher};
use serde::{Deserialize, Serialize};

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// Why a keystore could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// Not a V3 keystore JSON document.
    #[error("not a V3 keystore file: {0}")]
    Format(String),
    /// A KDF or cipher this implementation does not know.
    #[error("unsupported keystore {0}")]
    Unsupported(String),
    /// The MAC does not match: almost always a wrong password.
    #[error("wrong password for keystore (MAC mismatch)")]
    WrongPassword,
    /// The decrypted bytes are not a valid key.
    #[error(transparent)]
    Key(#[from] KeyError),
}

#[derive(Serialize, Deserialize)]
struct KeystoreFile {
    #[serde(default)]
    address: Option<String>,
    crypto: CryptoSection,
    #[serde(default)]
    id: Option<String>,
    version: u32,
}

#[derive(Serialize, Deserialize)]
struct CryptoSection {
    cipher: String,
    cipherparams: CipherParams,
    ciphertext: String,
    kdf: String,
    kdfparams: serde_json::Value,
    mac: String,
}

#[derive(Serialize, Deserialize)]
struct CipherParams {
    iv: String,
}

fn hex_field(name: &str, v: &str) -> Result<Vec<u8>, KeystoreError> {
    hex::decode(v.trim_start_matches("0x"))
        .map_err(|_| KeystoreError::Format(format!("{name} is not hex")))
}

fn u64_param(p: &serde_json::Value, name: &str) -> Result<u64, KeystoreError> {
    p.get(name)
        .and_then(|v| v.as_u64())
        .ok_or_else(|| KeystoreError::Format(format!("kdfparams.{name} missing")))
}

/// Derives the 32-byte key-encryption key from the password per the file's KDF.
fn derive_key(
    kdf: &str,
    params: &serde_json::Value,
    password: &[u8],
) -> Result<[u8; 32], KeystoreError> {
    let salt = hex_field(
        "salt",
        params
            .get("salt")
            .and_then(|s| s.as_str())
            .ok_or_else(|| KeystoreError::Format("kdfparams.salt missing".into()))?,
    )?;
    let dklen = u64_param(params, "dklen")?;
    if dklen != 32 {
        return Err(KeystoreError::Unsupported(format!("dklen {dklen}")));
    }
    let mut out = [0u8; 32];
    match kdf {
        "scrypt" => {
            let n = u64_param(params, "n")?;
            if !n.is_power_of_two() || n < 2 {
                return Err(KeystoreError::Format(format!(
                    "scrypt n = {n} is not a power of two"
                )));
            }
            let r = u64_param(params, "r")? as u32;
            let p = u64_param(params, "p")? as u32;
            let sp = scrypt::Params::new(n.trailing_zeros() as u8, r, p, 32)
                .map_err(|e| KeystoreError::Unsupported(format!("scrypt params: {e}")))?;
            scrypt::scrypt(password, &salt, &sp, &mut out)
                .map_err(|e| KeystoreError::Unsupported(format!("scrypt: {e}")))?;
        }
        "pbkdf2" => {
            let c = u64_param(params, "c")? as u32;
            let prf = params
                .get("prf")
                .and_then(|v| v.as_str())
                .unwrap_or("hmac-sha256");
            if prf != "hmac-sha256" {
                return Err(KeystoreError::Unsupported(format!("pbkdf2 prf {prf}")));
            }
            pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, &salt, c, &mut out);
        }
        other => return Err(KeystoreError::Unsupported(format!("kdf {other}"))),
    }
    Ok(out)
}

/// Decrypts a V3 keystore JSON document with `password`.
pub fn decrypt(json: &str, password: &str) -> Result<PrivateKey, KeystoreError> {
    let file: KeystoreFile =
        serde_json::from_str(json).map_err(|e| KeystoreError::Format(e.to_string()))?;
    if file.version != 3 {
        return Err(KeystoreError::Unsupported(format!(
            "version {}",
            file.version
        )));
    }
    let c = &file.crypto;
    if c.cipher != "aes-128-ctr" {
        return Err(KeystoreError::Unsupported(format!("cipher {}", c.cipher)));
    }
    let dk = derive_key(&c.kdf, &c.kdfparams, password.as_bytes())?;
    let mut ciphertext = hex_field("ciphertext", &c.ciphertext)?;
    let mut mac_input = dk[16..32].to_vec();
    mac_input.extend_from_slice(&ciphertext);
    if keccak256(&mac_input).0[..] != hex_field("mac", &c.mac)?[..] {
        return Err(KeystoreError::WrongPassword);
    }
    let iv = hex_field("iv", &c.cipherparams.iv)?;
    let mut cipher = Aes128Ctr::new_from_slices(&dk[..16], &iv)
        .map_err(|_| KeystoreError::Format("iv must be 16 bytes".into()))?;
    cipher.apply_keystream(&mut ciphertext);
    let bytes: [u8; 32] = ciphertext
        .try_into()
        .map_err(|_| KeystoreError::Format("ciphertext must be 32 bytes".into()))?;
    Ok(PrivateKey::from_bytes(bytes)?)
}

/// Encrypts `key` into a V3 keystore JSON document (scrypt with `log_n`; geth uses 18, tests
/// may use less to stay fast).
pub fn encrypt(
    key: &PrivateKey,
    password: &str,
    log_n: u8,
    rng: &mut impl rand_core::RngCore,
) -> String {
    let mut salt = [0u8; 32];
    let mut iv = [0u8; 16];
    let mut uuid = [0u8; 16];
    rng.fill_bytes(&mut salt);
    rng.fill_bytes(&mut iv);
    rng.fill_bytes(&mut uuid);
    let (r, p) = (8u32, 1u32);
    let params = scrypt::Params::new(log_n, r, p, 32).expect("valid scrypt parameters");
    let mut dk = [0u8; 32];
    scrypt::scrypt(password.as_bytes(), &salt, &params, &mut dk).expect("32-byte output");
    let mut ciphertext = key.secret_bytes().to_vec();
    Aes128Ctr::new_from_slices(&dk[..16], &iv)
        .expect("16-byte key and iv")
        .apply_keystream(&mut ciphertext);
    let mut mac_input = dk[16..32].to_vec();
    mac_input.extend_from_slice(&ciphertext);
    let u = hex::encode(uuid);
    let file = KeystoreFile {
        address: Some(key.address().to_lower_hex()),
        crypto: CryptoSection {
            cipher: "aes-128-ctr".into(),
            cipherparams: CipherParams {
                iv: hex::encode(iv),
            },
            ciphertext: hex::encode(&ciphertext),
            kdf: "scrypt".into(),
            kdfparams: serde_json::json!({
                "dklen": 32, "n": 1u64 << log_n, "p": p, "r": r, "salt": hex::encode(salt)
            }),
            mac: hex::encode(keccak256(&mac_input).0),
        },
        id: Some(format!(
            "{}-{}-{}-{}-{}",
            &u[..8],
            &u[8..12],
            &u[12..16],
            &u[16..20],
            &u[20..]
        )),
        version: 3,
    };
    serde_json::to_string_pretty(&file).expect("keystore serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of the Web3 Secret Storage definition (pbkdf2, password "testpassword").
    const PBKDF2_VECTOR: &str = r#"{"crypto":{"cipher":"aes-128-ctr","cipherparams":{"iv":"6087dab2f9fdbbfaddc31a909735c1e6"},"ciphertext":"5318b4d5bcd28de64ee5559e671353e16f075ecae9f99c7a79a38af5f869aa46","kdf":"pbkdf2","kdfparams":{"c":262144,"dklen":32,"prf":"hmac-sha256","salt":"ae3cd4e7013836a3df6bd7241b12db061dbe2c6785853cce422d148a624ce0bd"},"mac":"517ead924a9d0dc3124507e3393d175ce3ff7c1e96529c6c555ce9e51205e9b2"},"id":"3198bc9c-6672-5ab3-d995-4942343ae5b6","version":3}"#;

    #[test]
    fn decrypts_the_web3_secret_storage_pbkdf2_vector() {
        let k = decrypt(PBKDF2_VECTOR, "testpassword").unwrap();
        assert_eq!(
            hex::encode(k.secret_bytes()),
            "7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d"
        );
    }

    #[test]
    fn wrong_password_is_reported_as_such() {
        assert!(matches!(
            decrypt(PBKDF2_VECTOR, "nope"),
            Err(KeystoreError::WrongPassword)
        ));
    }

    #[test]
    fn encrypt_then_decrypt_round_trips() {
        let mut rng = <rand_chacha::ChaCha8Rng as rand_core::SeedableRng>::seed_from_u64(7);
        let key = PrivateKey::random(&mut rng);
        let json = encrypt(&key, "pw", 4, &mut rng);
        assert_eq!(decrypt(&json, "pw").unwrap().address(), key.address());
        assert!(matches!(
            decrypt(&json, "pW"),
            Err(KeystoreError::WrongPassword)
        ));
    }

    #[test]
    fn garbage_is_a_format_error() {
        assert!(matches!(decrypt("{}", "x"), Err(KeystoreError::Format(_))));
        assert!(matches!(
            decrypt("not json", "x"),
            Err(KeystoreError::Format(_))
        ));
    }
}
