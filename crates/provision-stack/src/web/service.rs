//! The app on Fargate: its log group, cluster, roles and task definition, and the service in
//! the private subnets, reachable on the app's port from its load balancer only.

use std::collections::BTreeSet;

use provision_core::graph::{Graph, GraphError};
use provision_core::input::{Ref, Until};
use provision_core::names;
use provision_core::resource::Node;
use provision_ec2::{IngressRule, SecurityGroupOut, SecurityGroupSpec};
use provision_ecs::{
    CircuitBreaker, ClusterOut, ClusterSpec, ServiceOut, ServiceSpec, TaskDefinitionOut,
    TaskDefinitionSpec,
};
use provision_logs::{LogGroupOut, LogGroupSpec};

use super::load_balancer::LoadBalancer;
use super::roles::{self, Roles};
use super::{
    APP_PORT, CONTAINER_NAME, HEALTH_CHECK_GRACE_SECONDS, LOG_RETENTION_DAYS,
    SERVICE_GROUP_DESCRIPTION, TASK_CPU, TASK_MEMORY, app_environment, log_group_name,
};
use crate::backends::Backends;
use crate::images::{APP_FOLDER, Consumer, Images};
use crate::network::Network;
use crate::{Kinds, Project};
use provision_config::ImageSource;

/// What the service runs: the cluster and the task definition, with the roles' policies that
/// must be in place first.
pub(super) struct App {
    pub cluster: Ref<ClusterOut>,
    cluster_name: String,
    task_definition: Ref<TaskDefinitionOut>,
    roles: Roles,
}

/// Adds the log group, the cluster, the roles and the task definition.
pub(super) fn add_task(
    g: &mut Graph,
    project: &Project,
    kinds: &Kinds,
    images: &mut Images<'_>,
    backends: &Backends,
) -> Result<App, GraphError> {
    let config = &project.config;
    let k = &kinds.web;
    let stack = project.stack_name();
    let log_group: Ref<LogGroupOut> = g.insert(
        Node::new("web/log-group", k.logs.log_group.clone())
            .named(log_group_name(&stack))
            .fixed(&LogGroupSpec {
                retention_in_days: Some(LOG_RETENTION_DAYS),
            }),
    )?;
    let cluster_name = names::fit(&stack, "cluster", names::limits::ECS_CLUSTER);
    let cluster: Ref<ClusterOut> = g.insert(
        Node::new("web/cluster", k.ecs.cluster.clone())
            .named(cluster_name.clone())
            .fixed(&ClusterSpec {}),
    )?;
    let app_image = ImageSource::Build {
        folder: APP_FOLDER.to_string(),
    };
    let repository = images.repository_arn(g, &app_image, Consumer::App)?;
    let roles = roles::add(g, project, kinds, backends, &repository)?;

    let image = images.build(g, APP_FOLDER, config.platform, Consumer::App)?;
    let environment = app_environment(project, backends);
    let architecture = config.platform.ecs_cpu_architecture();
    let log_region = config.region.clone();
    let task_definition = g.insert(
        Node::new("web/task-definition", k.ecs.task_definition.clone())
            .named(names::fit(&stack, "app", names::limits::ECS_FAMILY))
            .spec(
                (
                    image.ready(),
                    roles.execution.ready(),
                    roles.task.ready(),
                    log_group.ready(),
                ),
                move |(image, execution_role, task_role, log_group)| TaskDefinitionSpec {
                    cpu: TASK_CPU.into(),
                    memory: TASK_MEMORY.into(),
                    cpu_architecture: architecture.to_string(),
                    operating_system_family: "LINUX".into(),
                    network_mode: "awsvpc".into(),
                    requires_compatibilities: vec!["FARGATE".into()],
                    execution_role_arn: execution_role.role_arn,
                    task_role_arn: task_role.role_arn,
                    container_name: CONTAINER_NAME.into(),
                    image: image.image_uri,
                    container_port: APP_PORT,
                    environment: environment.clone(),
                    log_group: log_group.log_group_name,
                    log_region: log_region.clone(),
                    log_stream_prefix: CONTAINER_NAME.into(),
                },
            ),
    )?;
    Ok(App {
        cluster,
        cluster_name,
        task_definition,
        roles,
    })
}

/// Adds the service's security group and the service.
pub(super) fn add_service(
    g: &mut Graph,
    project: &Project,
    kinds: &Kinds,
    net: &Network,
    app: &App,
    lb: &LoadBalancer,
) -> Result<Ref<ServiceOut>, GraphError> {
    let stack = project.stack_name();
    let group_name = names::fit(&stack, "app", names::limits::SECURITY_GROUP);
    let group: Ref<SecurityGroupOut> = g.insert(
        Node::new(
            "web/security-group/service",
            kinds.ec2.security_group.clone(),
        )
        .spec(
            (net.vpc.ready(), lb.security_group.ready()),
            move |(vpc, lb_group)| SecurityGroupSpec {
                vpc_id: vpc.vpc_id,
                group_name: group_name.clone(),
                description: SERVICE_GROUP_DESCRIPTION.into(),
                ingress: BTreeSet::from([IngressRule::tcp_from_group(
                    APP_PORT,
                    &lb_group.group_id,
                )]),
            },
        ),
    )?;

    let service_name = names::fit(&stack, "app", names::limits::ECS_SERVICE);
    let subnets: Vec<_> = net.private_subnets.iter().map(Ref::ready).collect();
    let service = Node::new("web/service", kinds.web.ecs.service.clone())
        .named(provision_ecs::service_node_name(
            &app.cluster_name,
            &service_name,
        ))
        .spec(
            (
                app.cluster.ready(),
                app.task_definition.ready(),
                lb.target_group.ready(),
                group.ready(),
                subnets,
            ),
            |(cluster, task_definition, target_group, group, subnets)| {
                let mut subnet_ids: Vec<String> =
                    subnets.into_iter().map(|s| s.subnet_id).collect();
                subnet_ids.sort();
                ServiceSpec {
                    cluster_arn: cluster.cluster_arn,
                    launch_type: "FARGATE".into(),
                    platform_version: "LATEST".into(),
                    desired_count: 1,
                    task_definition_arn: task_definition.task_definition_arn,
                    subnet_ids,
                    security_group_ids: vec![group.group_id],
                    assign_public_ip: false,
                    target_group_arn: target_group.target_group_arn,
                    container_name: CONTAINER_NAME.into(),
                    container_port: APP_PORT,
                    health_check_grace_period_seconds: HEALTH_CHECK_GRACE_SECONDS,
                    circuit_breaker: CircuitBreaker {
                        enable: true,
                        rollback: true,
                    },
                    minimum_healthy_percent: 100,
                    maximum_percent: 200,
                }
            },
        )
        // ECS refuses a target group no listener uses; the HTTPS listener may still be
        // waiting for the certificate.
        .ordered_after(&lb.attach_rule, Until::Ready)
        // Tasks in the private subnets reach ECR and CloudWatch Logs through the NAT gateway.
        .ordered_after(&net.private_egress, Until::Ready);
    // Tasks run with the roles' permissions, which must be in place first.
    let service = app
        .roles
        .policies
        .iter()
        .fold(service, |node, p| node.ordered_after(p, Until::Ready));
    g.insert(service)
}
