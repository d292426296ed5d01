//! Which AWS call a request is: the service (from the SigV4 credential scope), the operation
//! (from `X-Amz-Target`, the query protocols' `Action`, or a REST method and path), the wire
//! protocol its errors must be written in, and whether it changes anything.

use http::{HeaderMap, Method};

/// How a service writes its errors (and so how an injected error must look).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// EC2's own query dialect: `<Response><Errors><Error>`.
    Ec2Query,
    /// IAM, ELBv2, STS: `<ErrorResponse><Error><Type>`.
    AwsQuery,
    /// `X-Amz-Target` JSON (ECR, ECS, ACM, Logs, SageMaker): `x-amzn-ErrorType` and `__type`.
    AwsJson,
    /// REST with JSON bodies (Lambda and anything unrecognised).
    RestJson,
    /// Route 53: REST with `<ErrorResponse>` bodies.
    RestXml,
    /// S3: REST with bare `<Error>` bodies.
    S3,
}

/// One API call as the proxy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The SDK's name for the service (`EC2`, `Elastic Load Balancing v2`, `Lambda`...), the
    /// same names provision's `--json` call counts use; else the signing name.
    pub service: String,
    /// The SigV4 signing name (`ec2`, `elasticloadbalancing`, `lambda`...).
    pub signing_name: String,
    /// `CreateVpc`, `GetFunction`...; `METHOD /path` for REST calls the proxy does not know.
    pub operation: String,
    pub protocol: Protocol,
    /// Whether the call changes something (everything but Describe/Get/List/... reads).
    pub mutating: bool,
}

impl Call {
    /// `service:Operation`, the key calls are counted under.
    pub fn key(&self) -> String {
        format!("{}:{}", self.service, self.operation)
    }
}

/// Whether an operation name is one that changes something. Same rule as
/// `provision_aws::is_mutating`: AWS names reads `Describe*`, `Get*`, `List*`, `BatchGet*`,
/// `BatchCheck*`, `Head*` (and a few `Lookup*`/`Search*`/`Select*`).
pub fn is_mutating(operation: &str) -> bool {
    const READS: &[&str] = &[
        "Describe",
        "Get",
        "List",
        "BatchGet",
        "BatchCheck",
        "Head",
        "Lookup",
        "Search",
        "Select",
    ];
    !READS.iter().any(|p| operation.starts_with(p))
}

/// The parts of a request identification needs.
pub(crate) struct RequestParts<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Identifies a request. `form` is the request's query-protocol parameters (body form or URL
/// query), parsed once here and kept for the latency model.
pub(crate) fn identify(req: &RequestParts<'_>) -> (Call, Vec<(String, String)>) {
    let signing_name = signing_name(req.headers, req.query)
        .or_else(|| guess_signing_name(req))
        .unwrap_or_else(|| "unknown".to_string());
    let service = display_name(&signing_name);
    let target = header(req.headers, "x-amz-target");
    let form = query_params(req);
    let action = form
        .iter()
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.clone());

    let (operation, protocol, mutating) = if let Some(target) = target {
        let op = target.rsplit('.').next().unwrap_or(&target).to_string();
        let m = is_mutating(&op);
        (op, Protocol::AwsJson, m)
    } else if let Some(action) = action {
        let protocol = if signing_name == "ec2" {
            Protocol::Ec2Query
        } else {
            Protocol::AwsQuery
        };
        let m = is_mutating(&action);
        (action, protocol, m)
    } else {
        let segments: Vec<String> = req
            .path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect();
        let named = match signing_name.as_str() {
            "lambda" => lambda_operation(req.method, &segments).map(|op| (op, Protocol::RestJson)),
            "route53" => route53_operation(req.method, &segments).map(|op| (op, Protocol::RestXml)),
            "s3" => Some((s3_operation(req, &segments), Protocol::S3)),
            _ => None,
        };
        match named {
            Some((op, protocol)) => {
                let m = is_mutating(op);
                (op.to_string(), protocol, m)
            }
            None => {
                let protocol = match signing_name.as_str() {
                    "route53" => Protocol::RestXml,
                    "s3" => Protocol::S3,
                    _ => Protocol::RestJson,
                };
                let m = !matches!(*req.method, Method::GET | Method::HEAD | Method::OPTIONS);
                (format!("{} {}", req.method, req.path), protocol, m)
            }
        }
    };
    (
        Call {
            service,
            signing_name,
            operation,
            protocol,
            mutating,
        },
        form,
    )
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The service of the SigV4 credential scope `AKID/date/region/service/aws4_request` (header
/// or presigned query), or of SigV4a's `AKID/date/service/aws4_request`.
fn signing_name(headers: &HeaderMap, query: &str) -> Option<String> {
    let credential = header(headers, "authorization")
        .and_then(|auth| {
            let start = auth.find("Credential=")? + "Credential=".len();
            let rest = &auth[start..];
            let end = rest.find([',', ' ']).unwrap_or(rest.len());
            Some(rest[..end].to_string())
        })
        .or_else(|| {
            parse_form(query)
                .into_iter()
                .find(|(k, _)| k == "X-Amz-Credential")
                .map(|(_, v)| v)
        })?;
    let parts: Vec<&str> = credential.split('/').collect();
    if parts.len() >= 4 && parts.last() == Some(&"aws4_request") {
        return Some(parts[parts.len() - 2].to_string());
    }
    None
}

/// For unsigned requests: the service from what the request looks like.
fn guess_signing_name(req: &RequestParts<'_>) -> Option<String> {
    if let Some(target) = header(req.headers, "x-amz-target") {
        let prefix = target.split('.').next().unwrap_or("");
        let name = match prefix {
            p if p.starts_with("AmazonEC2ContainerRegistry") => "ecr",
            p if p.starts_with("AmazonEC2ContainerService") => "ecs",
            p if p.starts_with("CertificateManager") => "acm",
            p if p.starts_with("Logs") => "logs",
            p if p.starts_with("SageMaker") => "sagemaker",
            _ => return None,
        };
        return Some(name.to_string());
    }
    if req.path.starts_with("/2013-04-01/") {
        return Some("route53".to_string());
    }
    if req.path.contains("/functions") && req.path.starts_with("/20") {
        return Some("lambda".to_string());
    }
    None
}

/// The SDK's service names, so counts line up with provision's own call ledger.
fn display_name(signing_name: &str) -> String {
    match signing_name {
        "ec2" => "EC2",
        "ecr" => "ECR",
        "iam" => "IAM",
        "acm" => "ACM",
        "route53" => "Route53",
        "elasticloadbalancing" => "Elastic Load Balancing v2",
        "ecs" => "ECS",
        "logs" => "CloudWatch Logs",
        "sagemaker" => "SageMaker",
        "lambda" => "Lambda",
        "s3" => "S3",
        "sts" => "STS",
        other => other,
    }
    .to_string()
}

/// The query-protocol parameters: the form body of a POST, else the URL query.
fn query_params(req: &RequestParts<'_>) -> Vec<(String, String)> {
    let form_body = header(req.headers, "content-type")
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let mut params = parse_form(req.query);
    if form_body && let Ok(body) = std::str::from_utf8(req.body) {
        params.extend(parse_form(body));
    }
    params
}

/// `a=1&b=x%2Fy` → pairs, percent-decoded (`+` is a space in forms).
pub(crate) fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Lambda's REST routes (`/2015-03-31/functions/{name}/...` and friends).
fn lambda_operation(method: &Method, s: &[String]) -> Option<&'static str> {
    let seg = |i: usize| s.get(i).map(String::as_str);
    let m = method.as_str();
    Some(match (seg(1)?, s.len(), seg(3), m) {
        ("functions", 2, _, "POST") => "CreateFunction",
        ("functions", 2, _, "GET") => "ListFunctions",
        ("functions", 3, _, "GET") => "GetFunction",
        ("functions", 3, _, "DELETE") => "DeleteFunction",
        ("functions", 4, Some("configuration"), "GET") => "GetFunctionConfiguration",
        ("functions", 4, Some("configuration"), "PUT") => "UpdateFunctionConfiguration",
        ("functions", 4, Some("code"), "PUT") => "UpdateFunctionCode",
        ("functions", 4, Some("invocations"), "POST") => "Invoke",
        ("functions", 4, Some("policy"), "GET") => "GetPolicy",
        ("functions", 4, Some("policy"), "POST") => "AddPermission",
        ("functions", 5, Some("policy"), "DELETE") => "RemovePermission",
        ("functions", 4, Some("versions"), "GET") => "ListVersionsByFunction",
        ("functions", 4, Some("versions"), "POST") => "PublishVersion",
        ("functions", 4, Some("aliases"), "GET") => "ListAliases",
        ("functions", 4, Some("aliases"), "POST") => "CreateAlias",
        ("functions", 5, Some("aliases"), "GET") => "GetAlias",
        ("functions", 5, Some("aliases"), "PUT") => "UpdateAlias",
        ("functions", 5, Some("aliases"), "DELETE") => "DeleteAlias",
        ("functions", 4, Some("concurrency"), "PUT") => "PutFunctionConcurrency",
        ("functions", 4, Some("concurrency"), "GET") => "GetFunctionConcurrency",
        ("functions", 4, Some("concurrency"), "DELETE") => "DeleteFunctionConcurrency",
        ("functions", 4, Some("url"), "POST") => "CreateFunctionUrlConfig",
        ("functions", 4, Some("url"), "GET") => "GetFunctionUrlConfig",
        ("functions", 4, Some("url"), "PUT") => "UpdateFunctionUrlConfig",
        ("functions", 4, Some("url"), "DELETE") => "DeleteFunctionUrlConfig",
        ("functions", 4, Some("event-invoke-config"), "PUT") => "PutFunctionEventInvokeConfig",
        ("functions", 4, Some("event-invoke-config"), "POST") => "UpdateFunctionEventInvokeConfig",
        ("functions", 4, Some("event-invoke-config"), "GET") => "GetFunctionEventInvokeConfig",
        ("functions", 4, Some("event-invoke-config"), "DELETE") => {
            "DeleteFunctionEventInvokeConfig"
        }
        ("tags", _, _, "GET") => "ListTags",
        ("tags", _, _, "POST") => "TagResource",
        ("tags", _, _, "DELETE") => "UntagResource",
        ("account-settings", _, _, "GET") => "GetAccountSettings",
        _ => return None,
    })
}

/// Route 53's REST routes (`/2013-04-01/hostedzone/{id}/rrset` and friends).
fn route53_operation(method: &Method, s: &[String]) -> Option<&'static str> {
    let seg = |i: usize| s.get(i).map(String::as_str);
    let m = method.as_str();
    Some(match (seg(1)?, s.len(), seg(3), m) {
        ("hostedzone", 2, _, "POST") => "CreateHostedZone",
        ("hostedzone", 2, _, "GET") => "ListHostedZones",
        ("hostedzone", 3, _, "GET") => "GetHostedZone",
        ("hostedzone", 3, _, "DELETE") => "DeleteHostedZone",
        ("hostedzone", 3, _, "POST") => "UpdateHostedZoneComment",
        ("hostedzone", 4, Some("rrset"), "POST") => "ChangeResourceRecordSets",
        ("hostedzone", 4, Some("rrset"), "GET") => "ListResourceRecordSets",
        ("hostedzone", 4, Some("associatevpc"), "POST") => "AssociateVPCWithHostedZone",
        ("hostedzone", 4, Some("disassociatevpc"), "POST") => "DisassociateVPCFromHostedZone",
        ("hostedzone", 4, Some("dnssec"), "GET") => "GetDNSSEC",
        ("hostedzonecount", _, _, "GET") => "GetHostedZoneCount",
        ("hostedzonesbyname", _, _, "GET") => "ListHostedZonesByName",
        ("change", _, _, "GET") => "GetChange",
        ("tags", _, _, "GET") => "ListTagsForResource",
        ("tags", _, _, "POST") => "ChangeTagsForResource",
        ("healthcheck", 2, _, "POST") => "CreateHealthCheck",
        ("healthcheck", 2, _, "GET") => "ListHealthChecks",
        ("healthcheck", 3, _, "GET") => "GetHealthCheck",
        ("healthcheck", 3, _, "POST") => "UpdateHealthCheck",
        ("healthcheck", 3, _, "DELETE") => "DeleteHealthCheck",
        _ => return None,
    })
}

/// S3's operations, from the bucket/key shape of the path (path-style, or the bucket in the
/// `Host` of virtual-hosted requests) and the sub-resource in the query.
fn s3_operation(req: &RequestParts<'_>, segments: &[String]) -> &'static str {
    let params = parse_form(req.query);
    let has = |k: &str| params.iter().any(|(p, _)| p == k);
    // The SDK names most operations itself (`?x-id=PutObject`).
    if let Some((_, id)) = params.iter().find(|(k, _)| k == "x-id")
        && let Some(op) = S3_X_IDS.iter().find(|op| **op == id.as_str())
    {
        return op;
    }
    let host = header(req.headers, "host").unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
    let virtual_hosted = host.ends_with(".localhost") || host.contains(".s3");
    let (has_bucket, has_key) = if virtual_hosted {
        (true, !segments.is_empty())
    } else {
        (!segments.is_empty(), segments.len() > 1)
    };
    let m = req.method.as_str();
    match (has_bucket, has_key, m) {
        (false, _, _) => "ListBuckets",
        (true, false, "PUT") if has("tagging") => "PutBucketTagging",
        (true, false, "PUT") if has("versioning") => "PutBucketVersioning",
        (true, false, "PUT") if has("policy") => "PutBucketPolicy",
        (true, false, "PUT") if has("encryption") => "PutBucketEncryption",
        (true, false, "PUT") if has("publicAccessBlock") => "PutPublicAccessBlock",
        (true, false, "PUT") if has("lifecycle") => "PutBucketLifecycleConfiguration",
        (true, false, "PUT") if has("ownershipControls") => "PutBucketOwnershipControls",
        (true, false, "PUT") => "CreateBucket",
        (true, false, "GET") if has("list-type") => "ListObjectsV2",
        (true, false, "GET") if has("versions") => "ListObjectVersions",
        (true, false, "GET") if has("uploads") => "ListMultipartUploads",
        (true, false, "GET") if has("tagging") => "GetBucketTagging",
        (true, false, "GET") if has("versioning") => "GetBucketVersioning",
        (true, false, "GET") if has("location") => "GetBucketLocation",
        (true, false, "GET") if has("policy") => "GetBucketPolicy",
        (true, false, "GET") if has("encryption") => "GetBucketEncryption",
        (true, false, "GET") => "ListObjects",
        (true, false, "HEAD") => "HeadBucket",
        (true, false, "DELETE") if has("tagging") => "DeleteBucketTagging",
        (true, false, "DELETE") if has("policy") => "DeleteBucketPolicy",
        (true, false, "DELETE") => "DeleteBucket",
        (true, false, "POST") if has("delete") => "DeleteObjects",
        (true, true, "PUT") if req.headers.contains_key("x-amz-copy-source") => "CopyObject",
        (true, true, "PUT") if has("uploadId") => "UploadPart",
        (true, true, "PUT") if has("tagging") => "PutObjectTagging",
        (true, true, "PUT") => "PutObject",
        (true, true, "GET") if has("uploadId") => "ListParts",
        (true, true, "GET") if has("tagging") => "GetObjectTagging",
        (true, true, "GET") => "GetObject",
        (true, true, "HEAD") => "HeadObject",
        (true, true, "DELETE") if has("uploadId") => "AbortMultipartUpload",
        (true, true, "DELETE") if has("tagging") => "DeleteObjectTagging",
        (true, true, "DELETE") => "DeleteObject",
        (true, true, "POST") if has("uploads") => "CreateMultipartUpload",
        (true, true, "POST") if has("uploadId") => "CompleteMultipartUpload",
        (_, _, "POST") => "PostObject",
        _ => "Unknown",
    }
}

/// The `x-id` values the S3 SDK sends, as static names.
const S3_X_IDS: &[&str] = &[
    "AbortMultipartUpload",
    "CompleteMultipartUpload",
    "CopyObject",
    "CreateMultipartUpload",
    "DeleteObject",
    "DeleteObjects",
    "GetObject",
    "GetObjectAttributes",
    "GetObjectTagging",
    "ListObjects",
    "ListObjectsV2",
    "ListObjectVersions",
    "ListParts",
    "PutObject",
    "PutObjectTagging",
    "DeleteObjectTagging",
    "UploadPart",
    "UploadPartCopy",
    "ListBuckets",
    "ListMultipartUploads",
];

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn call(method: Method, path: &str, headers: &[(&'static str, &str)], body: &str) -> Call {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        identify(&RequestParts {
            method: &method,
            path,
            query,
            headers: &map,
            body: body.as_bytes(),
        })
        .0
    }

    fn auth(service: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=abc"
        )
    }

    #[test]
    fn identifies_each_protocol() {
        let form = "application/x-www-form-urlencoded; charset=utf-8";
        let c = call(
            Method::POST,
            "/",
            &[("authorization", &auth("ec2")), ("content-type", form)],
            "Action=CreateVpc&Version=2016-11-15&CidrBlock=10.0.0.0%2F16",
        );
        assert_eq!(
            (c.key().as_str(), c.protocol, c.mutating),
            ("EC2:CreateVpc", Protocol::Ec2Query, true)
        );
        let c = call(
            Method::POST,
            "/",
            &[
                ("authorization", &auth("elasticloadbalancing")),
                ("content-type", form),
            ],
            "Action=DescribeLoadBalancers&Version=2015-12-01",
        );
        assert_eq!(
            (c.key().as_str(), c.protocol, c.mutating),
            (
                "Elastic Load Balancing v2:DescribeLoadBalancers",
                Protocol::AwsQuery,
                false
            )
        );
        let c = call(
            Method::POST,
            "/",
            &[
                ("authorization", &auth("ecr")),
                (
                    "x-amz-target",
                    "AmazonEC2ContainerRegistry_V20150921.BatchCheckLayerAvailability",
                ),
            ],
            "{}",
        );
        assert_eq!(
            (c.key().as_str(), c.protocol, c.mutating),
            ("ECR:BatchCheckLayerAvailability", Protocol::AwsJson, false)
        );
        let c = call(
            Method::PUT,
            "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction%3Af/code",
            &[("authorization", &auth("lambda"))],
            "{}",
        );
        assert_eq!(
            (c.key().as_str(), c.protocol, c.mutating),
            ("Lambda:UpdateFunctionCode", Protocol::RestJson, true)
        );
        let c = call(
            Method::POST,
            "/2013-04-01/hostedzone/Z1/rrset/",
            &[("authorization", &auth("route53"))],
            "<x/>",
        );
        assert_eq!(
            (c.key().as_str(), c.protocol, c.mutating),
            ("Route53:ChangeResourceRecordSets", Protocol::RestXml, true)
        );
        let c = call(
            Method::PUT,
            "/bucket/state.json?x-id=PutObject",
            &[("authorization", &auth("s3")), ("host", "127.0.0.1:1")],
            "",
        );
        assert_eq!(c.key(), "S3:PutObject");
        let c = call(
            Method::HEAD,
            "/bucket",
            &[("authorization", &auth("s3")), ("host", "127.0.0.1:1")],
            "",
        );
        assert_eq!((c.key().as_str(), c.mutating), ("S3:HeadBucket", false));
    }
}
