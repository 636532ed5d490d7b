//! Where a job lives in Jenkins' URL space.

/// `/job/a/job/b` for the job `a/b` (folders), each name percent-encoded.
pub fn job_path(job: &str) -> String {
    job.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| format!("/job/{}", urlencode(s)))
        .collect()
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_paths_cover_folders() {
        assert_eq!(
            job_path("images/rebuild app"),
            "/job/images/job/rebuild%20app"
        );
    }
}
