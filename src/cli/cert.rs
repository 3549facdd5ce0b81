//! `keel cert`: writes the cluster CA and node certificates that [`crate::cert`] makes.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::cert::{self, CertError, Pair};

/// `keel cert create-ca` and `keel cert create-node`.
#[derive(Debug, Clone, Subcommand)]
pub enum CertCommand {
    /// A new cluster CA: DIR/ca.pem and its key DIR/ca.key (keep the key off the nodes).
    CreateCa {
        /// Where to write the files (created if missing).
        #[arg(long, value_name = "DIR", default_value = "certs")]
        dir: PathBuf,
    },
    /// A certificate for node N signed by the CA of DIR: DIR/node-N.pem and DIR/node-N.key.
    CreateNode {
        /// The node's node_id, which the certificate names.
        #[arg(long, value_name = "N")]
        node_id: u64,
        /// Host names or IP addresses the node is reached at (repeat or separate with ',').
        #[arg(
            long = "host",
            value_name = "H",
            value_delimiter = ',',
            required = true
        )]
        hosts: Vec<String>,
        /// Where the CA is and the files go.
        #[arg(long, value_name = "DIR", default_value = "certs")]
        dir: PathBuf,
    },
}

/// Why `keel cert` failed.
#[derive(Debug, thiserror::Error)]
pub enum CertCliError {
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error("{}: {error}", path.display())]
    File { path: PathBuf, error: io::Error },
    #[error("{} exists: remove it first to make a new one", path.display())]
    Exists { path: PathBuf },
}

/// Carries out `command`; the files written, certificate first.
pub fn cert(command: &CertCommand) -> Result<Vec<PathBuf>, CertCliError> {
    match command {
        CertCommand::CreateCa { dir } => {
            let ca = cert::create_ca()?;
            write_pair(dir, "ca", &ca)
        }
        CertCommand::CreateNode {
            node_id,
            hosts,
            dir,
        } => {
            let ca = Pair {
                cert_pem: read(&dir.join("ca.pem"))?,
                key_pem: read(&dir.join("ca.key"))?,
            };
            let node = cert::create_node(&ca, *node_id, hosts)?;
            write_pair(dir, &format!("node-{node_id}"), &node)
        }
    }
}

fn read(path: &Path) -> Result<String, CertCliError> {
    fs::read_to_string(path).map_err(|error| CertCliError::File {
        path: path.to_path_buf(),
        error,
    })
}

/// Writes `NAME.pem` (world-readable) and `NAME.key` (owner only) in `dir`, refusing to
/// replace either.
fn write_pair(dir: &Path, name: &str, pair: &Pair) -> Result<Vec<PathBuf>, CertCliError> {
    fs::create_dir_all(dir).map_err(|error| CertCliError::File {
        path: dir.to_path_buf(),
        error,
    })?;
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    for path in [&cert, &key] {
        if path.exists() {
            return Err(CertCliError::Exists { path: path.clone() });
        }
    }
    write_new(&key, pair.key_pem.as_bytes(), 0o600)?;
    write_new(&cert, pair.cert_pem.as_bytes(), 0o644)?;
    Ok(vec![cert, key])
}

fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), CertCliError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let written = options
        .open(path)
        .and_then(|mut file| file.write_all(contents).and_then(|()| file.sync_all()));
    written.map_err(|error| CertCliError::File {
        path: path.to_path_buf(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_then_nodes_land_in_the_directory_and_nothing_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().join("certs");
        let ca = cert(&CertCommand::CreateCa { dir: dir.clone() }).unwrap();
        assert_eq!(ca, [dir.join("ca.pem"), dir.join("ca.key")]);
        let node = CertCommand::CreateNode {
            node_id: 3,
            hosts: vec!["127.0.0.1".into()],
            dir: dir.clone(),
        };
        let files = cert(&node).unwrap();
        assert_eq!(files, [dir.join("node-3.pem"), dir.join("node-3.key")]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.join("node-3.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the key is the owner's alone");
        }
        assert!(matches!(cert(&node), Err(CertCliError::Exists { .. })));
        let again = cert(&CertCommand::CreateCa { dir: dir.clone() });
        assert!(matches!(again, Err(CertCliError::Exists { .. })));
        let elsewhere = tempfile::tempdir().unwrap();
        let no_ca = CertCommand::CreateNode {
            node_id: 1,
            hosts: vec!["h".into()],
            dir: elsewhere.path().to_path_buf(),
        };
        assert!(matches!(cert(&no_ca), Err(CertCliError::File { .. })));
    }
}
