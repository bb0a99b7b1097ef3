//! TagResource / UntagResource.

use kura_core::model::Tag;
use kura_core::names;
use kura_core::{Error, Result};

use super::{Caller, Service};
use crate::service::types::*;

const MAX_TAGS: usize = 50;

/// Tags as given, each checked against AWS's rules for keys and values.
pub(crate) fn validated_tags(tags: Vec<Tag>) -> Result<Vec<Tag>> {
    for t in &tags {
        names::validate_tag(&t.key, &t.value)?;
    }
    Ok(tags)
}

impl Service {
    pub async fn tag_resource(&self, p: &Caller, req: TagResourceRequest) -> Result<Empty> {
        let tags = validated_tags(req.tags)?;
        let secret = self.resolve_live(p, &req.secret_id).await?;
        self.store
            .modify(
                secret.id,
                &mut |st| {
                    if st.secret.is_scheduled_for_deletion() {
                        return Err(Error::marked_for_deletion());
                    }
                    for t in &tags {
                        match st.secret.tags.iter_mut().find(|x| x.key == t.key) {
                            Some(existing) => existing.value = t.value.clone(),
                            None => st.secret.tags.push(t.clone()),
                        }
                    }
                    if st.secret.tags.len() > MAX_TAGS {
                        return Err(Error::limit_exceeded(format!(
                            "A secret can have at most {MAX_TAGS} tags."
                        )));
                    }
                    st.secret.tags.sort_by(|a, b| a.key.cmp(&b.key));
                    Ok(())
                },
                &p.audit,
            )
            .await?;
        Ok(Empty {})
    }

    pub async fn untag_resource(&self, p: &Caller, req: UntagResourceRequest) -> Result<Empty> {
        for k in &req.tag_keys {
            kura_core::names::validate_tag_key(k)?;
        }
        let secret = self.resolve_live(p, &req.secret_id).await?;
        self.store
            .modify(
                secret.id,
                &mut |st| {
                    if st.secret.is_scheduled_for_deletion() {
                        return Err(Error::marked_for_deletion());
                    }
                    st.secret.tags.retain(|t| !req.tag_keys.contains(&t.key));
                    Ok(())
                },
                &p.audit,
            )
            .await?;
        Ok(Empty {})
    }
}
