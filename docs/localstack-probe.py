"""Probe: the calls provision makes in the network tier, IAM, Route 53, ACM, CloudWatch Logs
and the S3 state store, sent to an emulator, with what it answered.

    python docs/localstack-probe.py http://127.0.0.1:4566 > localstack.json
    python docs/localstack-probe.py http://127.0.0.1:5055 > moto.json
    python docs/localstack-probe.py --diff moto.json localstack.json

Each probe records a small, comparable summary (an error code, a state, whether a tag came
back), never ids, so two emulators' answers can be diffed line by line. docs/localstack.md
has the differences, and which one matches AWS.
"""

import concurrent.futures
import json
import sys
import time
import urllib.parse
import uuid

import boto3
import botocore.config
import botocore.exceptions

REGION = "us-east-1"
# A stack name of this run's own, so counts by tag do not include earlier runs' resources.
STACK = "probe-" + uuid.uuid4().hex[:8]
TAGS = [{"Key": "provision:stack", "Value": STACK}, {"Key": "provision:id", "Value": "x"}]


def client(service, url):
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=botocore.config.Config(
            retries={"max_attempts": 1},
            s3={"addressing_style": "path"},
        ),
    )


def attempt(f):
    """The call's result, or its error code and HTTP status."""
    try:
        return {"ok": f()}
    except botocore.exceptions.ClientError as e:
        return {
            "error": e.response.get("Error", {}).get("Code"),
            "status": e.response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
        }


def tag_spec(kind, name):
    return [{"ResourceType": kind, "Tags": TAGS + [{"Key": "Name", "Value": name}]}]


def ours():
    return [
        {"Name": "tag:provision:stack", "Values": [STACK]},
        {"Name": "tag:provision:id", "Values": ["x"]},
    ]


def tagged(tags):
    return {t["Key"] for t in tags or []} >= {"provision:stack", "provision:id", "Name"}


def ec2_probe(url, r):
    ec2 = client("ec2", url)
    zones = ec2.describe_availability_zones(
        Filters=[
            {"Name": "state", "Values": ["available"]},
            {"Name": "zone-type", "Values": ["availability-zone"]},
        ]
    )["AvailabilityZones"]
    r["ec2.azs.count>=2"] = len(zones) >= 2
    az = sorted(z["ZoneName"] for z in zones)[:2]

    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=tag_spec("vpc", "v"))["Vpc"]
    vpc_id = vpc["VpcId"]
    r["ec2.CreateVpc.state"] = vpc.get("State")
    r["ec2.CreateVpc.tags-in-reply"] = tagged(vpc.get("Tags"))
    r["ec2.DescribeVpcs(tag filters).count"] = len(ec2.describe_vpcs(Filters=ours())["Vpcs"])
    r["ec2.DescribeVpcs(unknown id)"] = attempt(
        lambda: len(ec2.describe_vpcs(VpcIds=["vpc-0123456789abcdef0"])["Vpcs"])
    )
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": True})
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    r["ec2.DescribeVpcAttribute(hostnames)"] = ec2.describe_vpc_attribute(
        VpcId=vpc_id, Attribute="enableDnsHostnames"
    )["EnableDnsHostnames"]["Value"]

    subnets = []
    for i, cidr in enumerate(["10.0.0.0/18", "10.0.64.0/18"]):
        s = ec2.create_subnet(
            VpcId=vpc_id,
            CidrBlock=cidr,
            AvailabilityZone=az[i],
            TagSpecifications=tag_spec("subnet", f"s{i}"),
        )["Subnet"]
        subnets.append(s["SubnetId"])
    r["ec2.CreateSubnet.tags-in-reply"] = tagged(s.get("Tags"))
    r["ec2.CreateSubnet.MapPublicIpOnLaunch"] = s.get("MapPublicIpOnLaunch")
    ec2.modify_subnet_attribute(SubnetId=subnets[0], MapPublicIpOnLaunch={"Value": True})
    r["ec2.DescribeSubnets(tag filters).count"] = len(
        ec2.describe_subnets(Filters=ours())["Subnets"]
    )
    r["ec2.DescribeSubnets(unknown id)"] = attempt(
        lambda: len(ec2.describe_subnets(SubnetIds=["subnet-0123456789abcdef0"])["Subnets"])
    )

    igw = ec2.create_internet_gateway(TagSpecifications=tag_spec("internet-gateway", "i"))[
        "InternetGateway"
    ]
    igw_id = igw["InternetGatewayId"]
    r["ec2.CreateInternetGateway.tags-in-reply"] = tagged(igw.get("Tags"))
    ec2.attach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)
    r["ec2.AttachInternetGateway(again)"] = attempt(
        lambda: bool(ec2.attach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id))
    )
    r["ec2.DescribeInternetGateways(attachment.vpc-id).count"] = len(
        ec2.describe_internet_gateways(
            Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}]
        )["InternetGateways"]
    )
    r["ec2.DescribeInternetGateways(unknown id)"] = attempt(
        lambda: len(
            ec2.describe_internet_gateways(InternetGatewayIds=["igw-0123456789abcdef0"])[
                "InternetGateways"
            ]
        )
    )

    eip = ec2.allocate_address(Domain="vpc", TagSpecifications=tag_spec("elastic-ip", "e"))
    r["ec2.AllocateAddress.tags-in-reply"] = "Tags" in eip
    r["ec2.DescribeAddresses(tag filters).count"] = len(
        ec2.describe_addresses(Filters=ours())["Addresses"]
    )
    r["ec2.DescribeAddresses(unknown allocation id)"] = attempt(
        lambda: len(ec2.describe_addresses(AllocationIds=["eipalloc-0123456789abcdef0"])["Addresses"])
    )

    token = uuid.uuid4().hex
    nat = ec2.create_nat_gateway(
        SubnetId=subnets[0],
        AllocationId=eip["AllocationId"],
        ClientToken=token,
        TagSpecifications=tag_spec("natgateway", "n"),
    )["NatGateway"]
    nat_id = nat["NatGatewayId"]
    r["ec2.CreateNatGateway.state"] = nat.get("State")
    r["ec2.CreateNatGateway.tags-in-reply"] = tagged(nat.get("Tags"))
    r["ec2.CreateNatGateway(same ClientToken)"] = attempt(
        lambda: "same id"
        if ec2.create_nat_gateway(
            SubnetId=subnets[0],
            AllocationId=eip["AllocationId"],
            ClientToken=token,
            TagSpecifications=tag_spec("natgateway", "n"),
        )["NatGateway"]["NatGatewayId"]
        == nat_id
        else "new gateway"
    )
    r["ec2.DescribeNatGateways(tag filters).count"] = len(
        ec2.describe_nat_gateways(Filter=ours())["NatGateways"]
    )
    nobody = [{"Name": "tag:provision:stack", "Values": ["no-such-stack"]}]
    r["ec2.DescribeNatGateways(tag filter no gateway matches).count"] = len(
        ec2.describe_nat_gateways(Filter=nobody)["NatGateways"]
    )
    r["ec2.DescribeVpcEndpoints(tag filter nothing matches).count"] = len(
        ec2.describe_vpc_endpoints(Filters=nobody)["VpcEndpoints"]
    )
    r["ec2.DescribeNatGateways.state"] = ec2.describe_nat_gateways(NatGatewayIds=[nat_id])[
        "NatGateways"
    ][0]["State"]
    r["ec2.DescribeNatGateways(unknown id)"] = attempt(
        lambda: len(
            ec2.describe_nat_gateways(NatGatewayIds=["nat-0123456789abcdef0"])["NatGateways"]
        )
    )

    token = uuid.uuid4().hex
    rt = ec2.create_route_table(
        VpcId=vpc_id, ClientToken=token, TagSpecifications=tag_spec("route-table", "r")
    )["RouteTable"]
    rt_id = rt["RouteTableId"]
    r["ec2.CreateRouteTable.tags-in-reply"] = tagged(rt.get("Tags"))
    again = ec2.create_route_table(
        VpcId=vpc_id, ClientToken=token, TagSpecifications=tag_spec("route-table", "r")
    )["RouteTable"]
    r["ec2.CreateRouteTable(same ClientToken).same-id"] = again["RouteTableId"] == rt_id
    if again["RouteTableId"] != rt_id:
        ec2.delete_route_table(RouteTableId=again["RouteTableId"])
    ec2.create_route(RouteTableId=rt_id, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw_id)
    r["ec2.CreateRoute(again)"] = attempt(
        lambda: bool(
            ec2.create_route(
                RouteTableId=rt_id, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw_id
            )
        )
    )
    r["ec2.CreateRoute(same destination, other target)"] = attempt(
        lambda: bool(
            ec2.create_route(
                RouteTableId=rt_id, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat_id
            )
        )
    )
    r["ec2.ReplaceRoute(to NAT)"] = attempt(
        lambda: bool(
            ec2.replace_route(
                RouteTableId=rt_id, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat_id
            )
        )
    )
    routes = ec2.describe_route_tables(RouteTableIds=[rt_id])["RouteTables"][0]["Routes"]
    default = [x for x in routes if x.get("DestinationCidrBlock") == "0.0.0.0/0"][0]
    r["ec2.DescribeRouteTables.route.state"] = default.get("State")
    r["ec2.DescribeRouteTables.route.target-after-replace"] = (
        "nat" if default.get("NatGatewayId") else "gateway" if default.get("GatewayId") else None
    )
    assoc = ec2.associate_route_table(RouteTableId=rt_id, SubnetId=subnets[1])
    r["ec2.AssociateRouteTable.state"] = assoc.get("AssociationState", {}).get("State")
    r["ec2.AssociateRouteTable(again)"] = attempt(
        lambda: bool(ec2.associate_route_table(RouteTableId=rt_id, SubnetId=subnets[1]))
    )
    found = ec2.describe_route_tables(
        Filters=[{"Name": "association.subnet-id", "Values": [subnets[1]]}]
    )["RouteTables"]
    r["ec2.DescribeRouteTables(association.subnet-id).count"] = len(found)
    main = ec2.describe_route_tables(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "association.main", "Values": ["true"]}]
    )["RouteTables"]
    r["ec2.DescribeRouteTables(association.main).count"] = len(main)
    r["ec2.DescribeRouteTables(unknown id)"] = attempt(
        lambda: len(ec2.describe_route_tables(RouteTableIds=["rtb-0123456789abcdef0"])["RouteTables"])
    )

    sg = ec2.create_security_group(
        VpcId=vpc_id,
        GroupName="probe-endpoints",
        Description="probe",
        TagSpecifications=tag_spec("security-group", "g"),
    )
    sg_id = sg["GroupId"]
    r["ec2.CreateSecurityGroup.tags-in-reply"] = "Tags" in sg
    r["ec2.CreateSecurityGroup(same name)"] = attempt(
        lambda: bool(
            ec2.create_security_group(VpcId=vpc_id, GroupName="probe-endpoints", Description="probe")
        )
    )
    perm = [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}]
    ec2.authorize_security_group_ingress(GroupId=sg_id, IpPermissions=perm)
    r["ec2.AuthorizeSecurityGroupIngress(again)"] = attempt(
        lambda: bool(ec2.authorize_security_group_ingress(GroupId=sg_id, IpPermissions=perm))
    )
    other = [{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}]
    r["ec2.RevokeSecurityGroupIngress(absent rule)"] = attempt(
        lambda: ec2.revoke_security_group_ingress(GroupId=sg_id, IpPermissions=other).get("Return")
    )
    r["ec2.DescribeSecurityGroups(tag filters).count"] = len(
        ec2.describe_security_groups(Filters=ours())["SecurityGroups"]
    )
    r["ec2.DescribeSecurityGroups(unknown id)"] = attempt(
        lambda: len(ec2.describe_security_groups(GroupIds=["sg-0123456789abcdef0"])["SecurityGroups"])
    )

    token = uuid.uuid4().hex
    gw = ec2.create_vpc_endpoint(
        VpcId=vpc_id,
        ServiceName=f"com.amazonaws.{REGION}.s3",
        VpcEndpointType="Gateway",
        RouteTableIds=[rt_id],
        ClientToken=token,
        TagSpecifications=tag_spec("vpc-endpoint", "s3"),
    )["VpcEndpoint"]
    r["ec2.CreateVpcEndpoint(Gateway).state"] = gw.get("State")
    r["ec2.CreateVpcEndpoint(Gateway).PrivateDnsEnabled"] = gw.get("PrivateDnsEnabled")
    r["ec2.CreateVpcEndpoint.tags-in-reply"] = tagged(gw.get("Tags"))
    again = ec2.create_vpc_endpoint(
        VpcId=vpc_id,
        ServiceName=f"com.amazonaws.{REGION}.s3",
        VpcEndpointType="Gateway",
        RouteTableIds=[rt_id],
        ClientToken=token,
        TagSpecifications=tag_spec("vpc-endpoint", "s3"),
    )
    r["ec2.CreateVpcEndpoint(same ClientToken)"] = (
        "same id" if again["VpcEndpoint"]["VpcEndpointId"] == gw["VpcEndpointId"] else "new endpoint"
    )
    if again["VpcEndpoint"]["VpcEndpointId"] != gw["VpcEndpointId"]:
        ec2.delete_vpc_endpoints(VpcEndpointIds=[again["VpcEndpoint"]["VpcEndpointId"]])
    routes = ec2.describe_route_tables(RouteTableIds=[rt_id])["RouteTables"][0]["Routes"]
    r["ec2.gateway-endpoint.adds-prefix-list-route"] = any(x.get("DestinationPrefixListId") for x in routes)
    iface = ec2.create_vpc_endpoint(
        VpcId=vpc_id,
        ServiceName=f"com.amazonaws.{REGION}.ecr.api",
        VpcEndpointType="Interface",
        SubnetIds=[subnets[1]],
        SecurityGroupIds=[sg_id],
        PrivateDnsEnabled=True,
        ClientToken=uuid.uuid4().hex,
        TagSpecifications=tag_spec("vpc-endpoint", "ecr"),
    )["VpcEndpoint"]
    r["ec2.CreateVpcEndpoint(Interface).state"] = iface.get("State")
    d = ec2.describe_vpc_endpoints(VpcEndpointIds=[iface["VpcEndpointId"]])["VpcEndpoints"][0]
    r["ec2.DescribeVpcEndpoints(Interface).state"] = d.get("State")
    r["ec2.DescribeVpcEndpoints(Interface).groups"] = len(d.get("Groups", []))
    r["ec2.DescribeVpcEndpoints(Interface).PrivateDnsEnabled"] = d.get("PrivateDnsEnabled")
    r["ec2.DescribeVpcEndpoints(Interface).network-interfaces"] = len(d.get("NetworkInterfaceIds", []))
    r["ec2.DescribeNetworkInterfaces(vpc-id).count"] = len(
        ec2.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])[
            "NetworkInterfaces"
        ]
    )
    r["ec2.DescribeVpcEndpoints(tag filters).count"] = len(
        ec2.describe_vpc_endpoints(Filters=ours())["VpcEndpoints"]
    )
    r["ec2.DescribeVpcEndpoints(unknown id)"] = attempt(
        lambda: len(ec2.describe_vpc_endpoints(VpcEndpointIds=["vpce-0123456789abcdef0"])["VpcEndpoints"])
    )

    # Teardown in provision's order, recording what blocks what.
    r["ec2.DeleteVpc(while in use)"] = attempt(lambda: bool(ec2.delete_vpc(VpcId=vpc_id)))
    r["ec2.DeleteSubnet(while NAT in it)"] = attempt(lambda: bool(ec2.delete_subnet(SubnetId=subnets[0])))
    r["ec2.DeleteSecurityGroup(while endpoint uses it)"] = attempt(
        lambda: bool(ec2.delete_security_group(GroupId=sg_id))
    )
    r["ec2.DeleteVpcEndpoints(interface)"] = attempt(
        lambda: len(ec2.delete_vpc_endpoints(VpcEndpointIds=[iface["VpcEndpointId"]]).get("Unsuccessful", []))
    )
    # After a second gateway endpoint made by a repeated ClientToken was deleted (above).
    r["ec2.DeleteVpcEndpoints(gateway)"] = attempt(
        lambda: len(ec2.delete_vpc_endpoints(VpcEndpointIds=[gw["VpcEndpointId"]]).get("Unsuccessful", []))
    )
    after = ec2.describe_vpc_endpoints(VpcEndpointIds=[iface["VpcEndpointId"]])
    r["ec2.DescribeVpcEndpoints(after delete)"] = [e.get("State") for e in after["VpcEndpoints"]]
    out = attempt(lambda: ec2.delete_vpc_endpoints(VpcEndpointIds=[iface["VpcEndpointId"]]).get("Unsuccessful"))
    r["ec2.DeleteVpcEndpoints(again)"] = (
        {"ok": [u.get("Error", {}).get("Code") for u in out["ok"]]} if "ok" in out else out
    )
    r["ec2.ReleaseAddress(while NAT holds it)"] = attempt(
        lambda: bool(ec2.release_address(AllocationId=eip["AllocationId"]))
    )
    r["ec2.DeleteInternetGateway(while attached)"] = attempt(
        lambda: bool(ec2.delete_internet_gateway(InternetGatewayId=igw_id))
    )
    ec2.delete_nat_gateway(NatGatewayId=nat_id)
    r["ec2.DescribeNatGateways(after delete).state"] = [
        n["State"] for n in ec2.describe_nat_gateways(NatGatewayIds=[nat_id])["NatGateways"]
    ]
    r["ec2.DescribeNatGateways(tag filters, after delete).count"] = len(
        ec2.describe_nat_gateways(Filter=ours())["NatGateways"]
    )
    r["ec2.DeleteNatGateway(again)"] = attempt(lambda: ec2.delete_nat_gateway(NatGatewayId=nat_id)["NatGatewayId"] == nat_id)
    r["ec2.DeleteRoute"] = attempt(
        lambda: bool(ec2.delete_route(RouteTableId=rt_id, DestinationCidrBlock="0.0.0.0/0"))
    )
    r["ec2.DeleteRoute(again)"] = attempt(
        lambda: bool(ec2.delete_route(RouteTableId=rt_id, DestinationCidrBlock="0.0.0.0/0"))
    )
    r["ec2.DeleteRouteTable(while associated)"] = attempt(
        lambda: bool(ec2.delete_route_table(RouteTableId=rt_id))
    )
    r["ec2.DisassociateRouteTable"] = attempt(
        lambda: bool(ec2.disassociate_route_table(AssociationId=assoc["AssociationId"]))
    )
    r["ec2.DisassociateRouteTable(again)"] = attempt(
        lambda: bool(ec2.disassociate_route_table(AssociationId=assoc["AssociationId"]))
    )
    r["ec2.DeleteRouteTable"] = attempt(lambda: bool(ec2.delete_route_table(RouteTableId=rt_id)))
    r["ec2.ReleaseAddress"] = attempt(lambda: bool(ec2.release_address(AllocationId=eip["AllocationId"])))
    r["ec2.ReleaseAddress(again)"] = attempt(
        lambda: bool(ec2.release_address(AllocationId=eip["AllocationId"]))
    )
    r["ec2.DetachInternetGateway"] = attempt(
        lambda: bool(ec2.detach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id))
    )
    r["ec2.DetachInternetGateway(again)"] = attempt(
        lambda: bool(ec2.detach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id))
    )
    r["ec2.DeleteInternetGateway"] = attempt(lambda: bool(ec2.delete_internet_gateway(InternetGatewayId=igw_id)))
    r["ec2.DeleteInternetGateway(again)"] = attempt(
        lambda: bool(ec2.delete_internet_gateway(InternetGatewayId=igw_id))
    )
    for i, sub in enumerate(subnets):
        r[f"ec2.DeleteSubnet({i})"] = attempt(lambda: bool(ec2.delete_subnet(SubnetId=sub)))
    r["ec2.DeleteSubnet(again)"] = attempt(lambda: bool(ec2.delete_subnet(SubnetId=subnets[0])))
    r["ec2.DeleteSecurityGroup"] = attempt(lambda: bool(ec2.delete_security_group(GroupId=sg_id)))
    r["ec2.DeleteSecurityGroup(again)"] = attempt(lambda: bool(ec2.delete_security_group(GroupId=sg_id)))
    r["ec2.DeleteVpc"] = attempt(lambda: bool(ec2.delete_vpc(VpcId=vpc_id)))
    r["ec2.DeleteVpc(again)"] = attempt(lambda: bool(ec2.delete_vpc(VpcId=vpc_id)))


def iam_probe(url, r):
    iam = client("iam", url)
    name = "probe-" + uuid.uuid4().hex[:8]
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
    )
    # botocore decodes the URL-encoded documents IAM sends; look at the raw reply instead.
    raw = {}

    def keep(http_response, **_):
        raw["body"] = http_response.text

    iam.meta.events.register("after-call.iam.GetRole", lambda http_response, **kw: keep(http_response))
    iam.meta.events.register("after-call.iam.GetRolePolicy", lambda http_response, **kw: keep(http_response))
    role = iam.create_role(
        RoleName=name, AssumeRolePolicyDocument=trust, Description="probe", Tags=TAGS
    )["Role"]
    r["iam.CreateRole.account-in-arn"] = role["Arn"].split(":")[4]
    r["iam.CreateRole(again)"] = attempt(
        lambda: bool(iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust))
    )
    r["iam.CreateRole(empty description)"] = attempt(
        lambda: bool(
            iam.create_role(RoleName=name + "-e", AssumeRolePolicyDocument=trust, Description="")
        )
    )
    got = iam.get_role(RoleName=name)["Role"]
    r["iam.GetRole.tags"] = len(got.get("Tags", []))
    r["iam.GetRole.raw-trust-policy-url-encoded"] = "%22" in raw["body"] or "%7B" in raw["body"]
    r["iam.GetRole(unknown)"] = attempt(lambda: bool(iam.get_role(RoleName=name + "-missing")))
    iam.put_role_policy(
        RoleName=name,
        PolicyName="app",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sagemaker:InvokeEndpoint", "Resource": "*"}]}
        ),
    )
    iam.get_role_policy(RoleName=name, PolicyName="app")
    r["iam.GetRolePolicy.raw-document-url-encoded"] = "%22" in raw["body"] or "%7B" in raw["body"]
    r["iam.GetRolePolicy(unknown)"] = attempt(
        lambda: bool(iam.get_role_policy(RoleName=name, PolicyName="missing"))
    )
    for p in [
        "service-role/AmazonECSTaskExecutionRolePolicy",
        "service-role/AWSLambdaBasicExecutionRole",
        "AmazonSageMakerFullAccess",
    ]:
        r[f"iam.AttachRolePolicy({p})"] = attempt(
            lambda: bool(iam.attach_role_policy(RoleName=name, PolicyArn=f"arn:aws:iam::aws:policy/{p}"))
        )
    r["iam.AttachRolePolicy(no such policy)"] = attempt(
        lambda: bool(
            iam.attach_role_policy(RoleName=name, PolicyArn="arn:aws:iam::aws:policy/NoSuchPolicyXyz")
        )
    )
    r["iam.AttachRolePolicy(wrong case)"] = attempt(
        lambda: bool(
            iam.attach_role_policy(RoleName=name, PolicyArn="arn:aws:iam::aws:policy/AmazonSagemakerFullAccess")
        )
    )
    r["iam.ListAttachedRolePolicies.count"] = len(
        iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
    )
    r["iam.ListAttachedRolePolicies(unknown role)"] = attempt(
        lambda: bool(iam.list_attached_role_policies(RoleName=name + "-missing"))
    )
    r["iam.DeleteRole(with policies)"] = attempt(lambda: bool(iam.delete_role(RoleName=name)))
    for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=name, PolicyArn=p["PolicyArn"])
    r["iam.DetachRolePolicy(not attached)"] = attempt(
        lambda: bool(
            iam.detach_role_policy(
                RoleName=name, PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess"
            )
        )
    )
    iam.delete_role_policy(RoleName=name, PolicyName="app")
    r["iam.DeleteRolePolicy(again)"] = attempt(
        lambda: bool(iam.delete_role_policy(RoleName=name, PolicyName="app"))
    )
    iam.delete_role(RoleName=name)
    r["iam.DeleteRole(again)"] = attempt(lambda: bool(iam.delete_role(RoleName=name)))
    try:
        iam.delete_role(RoleName=name + "-e")
    except botocore.exceptions.ClientError:
        pass


def route53_probe(url, r):
    r53 = client("route53", url)
    ref = uuid.uuid4().hex
    zone = r53.create_hosted_zone(Name="probe.test", CallerReference=ref)["HostedZone"]
    zid = zone["Id"].split("/")[-1]
    r["route53.CreateHostedZone(same CallerReference)"] = attempt(
        lambda: bool(r53.create_hosted_zone(Name="probe.test", CallerReference=ref))
    )

    def rrset(name, value, ttl=300):
        return {"Name": name, "Type": "CNAME", "TTL": ttl, "ResourceRecords": [{"Value": value}]}

    def change(action, rr, zone_id=zid):
        return r53.change_resource_record_sets(
            HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": action, "ResourceRecordSet": rr}]}
        )

    out = change("CREATE", rrset("_a.probe.test.", "x.acm-validations.aws."))
    r["route53.ChangeResourceRecordSets.status"] = out["ChangeInfo"]["Status"]
    r["route53.CREATE(existing)"] = attempt(lambda: bool(change("CREATE", rrset("_a.probe.test.", "y."))))
    r["route53.UPSERT(existing)"] = attempt(lambda: bool(change("UPSERT", rrset("_a.probe.test.", "y."))))
    r["route53.DELETE(values differ)"] = attempt(lambda: bool(change("DELETE", rrset("_a.probe.test.", "z."))))
    r["route53.DELETE(absent)"] = attempt(lambda: bool(change("DELETE", rrset("_none.probe.test.", "z."))))
    r["route53.CREATE(no such zone)"] = attempt(
        lambda: bool(change("CREATE", rrset("_b.probe.test.", "y."), zone_id="Z0000000000000NOSUCH"))
    )
    change("CREATE", rrset("_c.probe.test.", "c."))
    change("CREATE", rrset("*.probe.test.", "w."))
    # provision finds one record by starting the listing at its name and type, one item.
    first = r53.list_resource_record_sets(
        HostedZoneId=zid, StartRecordName="_c.probe.test.", StartRecordType="CNAME", MaxItems="1"
    )
    r["route53.ListResourceRecordSets(start=_c, max 1)"] = [
        (x["Name"], x["Type"]) for x in first["ResourceRecordSets"]
    ]
    absent = r53.list_resource_record_sets(
        HostedZoneId=zid, StartRecordName="_b.probe.test.", StartRecordType="CNAME", MaxItems="1"
    )
    r["route53.ListResourceRecordSets(start=_b absent, max 1)"] = [
        (x["Name"], x["Type"]) for x in absent["ResourceRecordSets"]
    ]
    upper = r53.list_resource_record_sets(
        HostedZoneId=zid, StartRecordName="_C.PROBE.TEST", StartRecordType="CNAME", MaxItems="1"
    )
    r["route53.ListResourceRecordSets(start upper case, no dot)"] = [
        (x["Name"], x["Type"]) for x in upper["ResourceRecordSets"]
    ]
    wild = [x["Name"] for x in r53.list_resource_record_sets(HostedZoneId=zid)["ResourceRecordSets"] if "probe.test" in x["Name"] and x["Type"] == "CNAME"]
    r["route53.wildcard-name-as-listed"] = [n for n in wild if "*" in n or "\\052" in n]
    r["route53.ListResourceRecordSets(no such zone)"] = attempt(
        lambda: bool(r53.list_resource_record_sets(HostedZoneId="Z0000000000000NOSUCH"))
    )
    # An alias to a load balancer (what the app record is), to see what is checked.
    r["route53.UPSERT(alias to an unknown ELB)"] = attempt(
        lambda: bool(
            change(
                "UPSERT",
                {
                    "Name": "app.probe.test.",
                    "Type": "A",
                    "AliasTarget": {
                        "HostedZoneId": "Z35SXDOTRQ7X7K",
                        "DNSName": "nothing-here-1.us-east-1.elb.amazonaws.com.",
                        "EvaluateTargetHealth": True,
                    },
                },
            )
        )
    )
    for rr in r53.list_resource_record_sets(HostedZoneId=zid)["ResourceRecordSets"]:
        if rr["Type"] not in ("SOA", "NS"):
            change("DELETE", rr)
    r53.delete_hosted_zone(Id=zid)


def acm_probe(url, r, r53_url):
    acm = client("acm", url)
    token = uuid.uuid4().hex
    domain = "probe-" + uuid.uuid4().hex[:6] + ".test"
    req = dict(
        DomainName=domain,
        ValidationMethod="DNS",
        KeyAlgorithm="RSA_2048",
        IdempotencyToken=token,
        SubjectAlternativeNames=[domain, "dev." + domain],
        Tags=TAGS,
    )
    arn = acm.request_certificate(**req)["CertificateArn"]
    r["acm.RequestCertificate.account-in-arn"] = arn.split(":")[4]
    r["acm.RequestCertificate(same token).same-arn"] = acm.request_certificate(**req)["CertificateArn"] == arn
    r["acm.RequestCertificate(token with hyphen)"] = attempt(
        lambda: bool(acm.request_certificate(**{**req, "IdempotencyToken": "a-b"}))
    )
    d = acm.describe_certificate(CertificateArn=arn)["Certificate"]
    r["acm.DescribeCertificate.status"] = d.get("Status")
    r["acm.DescribeCertificate.KeyAlgorithm"] = d.get("KeyAlgorithm")
    r["acm.DescribeCertificate.Type"] = d.get("Type")
    opts = d.get("DomainValidationOptions", [])
    r["acm.DescribeCertificate.validation-options"] = len(opts)
    r["acm.DescribeCertificate.records-at-once"] = all("ResourceRecord" in o for o in opts)
    r["acm.DescribeCertificate.ValidationMethod"] = sorted({o.get("ValidationMethod") for o in opts} - {None})
    r["acm.DescribeCertificate.ValidationStatus"] = sorted({o.get("ValidationStatus") for o in opts} - {None})
    if opts and "ResourceRecord" in opts[0]:
        rec = opts[0]["ResourceRecord"]
        r["acm.validation-record.name-shape"] = (
            "_<hash>.<domain>." if rec["Name"].startswith("_") and rec["Name"].endswith(domain + ".") else rec["Name"]
        )
        r["acm.validation-record.value-shape"] = (
            "_<hash>.<x>.acm-validations.aws." if rec["Value"].endswith(".acm-validations.aws.") else "other"
        )
        r["acm.validation-record.same-for-both-names"] = len({o["ResourceRecord"]["Name"] for o in opts}) == 1
    listed = acm.list_certificates(CertificateStatuses=["PENDING_VALIDATION", "ISSUED"])["CertificateSummaryList"]
    mine = [c for c in listed if c["CertificateArn"] == arn]
    r["acm.ListCertificates(PENDING_VALIDATION, ISSUED).lists-it"] = bool(mine)
    if mine:
        r["acm.ListCertificates.SubjectAlternativeNameSummaries"] = len(mine[0].get("SubjectAlternativeNameSummaries", []))
        r["acm.ListCertificates.HasAdditionalSubjectAlternativeNames"] = mine[0].get("HasAdditionalSubjectAlternativeNames")
    r["acm.ListTagsForCertificate.count"] = len(acm.list_tags_for_certificate(CertificateArn=arn).get("Tags", []))
    missing = arn[:-6] + "000000"
    r["acm.DescribeCertificate(unknown)"] = attempt(lambda: bool(acm.describe_certificate(CertificateArn=missing)))
    # Write the validation records, as provision does, then see whether the status moves.
    if opts and "ResourceRecord" in opts[0]:
        r53 = client("route53", r53_url)
        zid = r53.create_hosted_zone(Name=domain, CallerReference=uuid.uuid4().hex)["HostedZone"]["Id"]
        for rec in {o["ResourceRecord"]["Name"]: o["ResourceRecord"] for o in opts}.values():
            r53.change_resource_record_sets(
                HostedZoneId=zid,
                ChangeBatch={
                    "Changes": [
                        {
                            "Action": "UPSERT",
                            "ResourceRecordSet": {
                                "Name": rec["Name"],
                                "Type": rec["Type"],
                                "TTL": 300,
                                "ResourceRecords": [{"Value": rec["Value"]}],
                            },
                        }
                    ]
                },
            )
        time.sleep(3)
        r["acm.status-3s-after-records"] = acm.describe_certificate(CertificateArn=arn)["Certificate"]["Status"]
    r["acm.DeleteCertificate"] = attempt(lambda: bool(acm.delete_certificate(CertificateArn=arn)))
    r["acm.DeleteCertificate(again)"] = attempt(lambda: bool(acm.delete_certificate(CertificateArn=arn)))


def logs_probe(url, r, account):
    logs = client("logs", url)
    name = "/ecs/probe-" + uuid.uuid4().hex[:6] + "/app"
    logs.create_log_group(logGroupName=name, tags={t["Key"]: t["Value"] for t in TAGS})
    r["logs.CreateLogGroup(again)"] = attempt(lambda: bool(logs.create_log_group(logGroupName=name)))
    groups = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    g = [x for x in groups if x["logGroupName"] == name][0]
    r["logs.DescribeLogGroups.arn-ends-with-:*"] = g.get("arn", "").endswith(":*")
    r["logs.DescribeLogGroups.has-logGroupArn"] = "logGroupArn" in g
    arn = g.get("logGroupArn") or g["arn"].removesuffix(":*")
    r["logs.arn-as-provision-builds-it"] = arn == f"arn:aws:logs:{REGION}:{account}:log-group:{name}"
    r["logs.ListTagsForResource(arn without :*).count"] = attempt(
        lambda: len(logs.list_tags_for_resource(resourceArn=arn)["tags"])
    )
    r["logs.ListTagsForResource(arn with :*)"] = attempt(
        lambda: len(logs.list_tags_for_resource(resourceArn=arn + ":*")["tags"])
    )
    r["logs.ListTagsLogGroup(deprecated)"] = attempt(lambda: len(logs.list_tags_log_group(logGroupName=name)["tags"]))
    logs.put_retention_policy(logGroupName=name, retentionInDays=30)
    r["logs.PutRetentionPolicy(31 days, not allowed)"] = attempt(
        lambda: bool(logs.put_retention_policy(logGroupName=name, retentionInDays=31))
    )
    r["logs.DescribeLogGroups.retentionInDays"] = [
        x.get("retentionInDays") for x in logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    ]
    logs.delete_retention_policy(logGroupName=name)
    logs.delete_log_group(logGroupName=name)
    r["logs.DeleteLogGroup(again)"] = attempt(lambda: bool(logs.delete_log_group(logGroupName=name)))
    r["logs.DeleteRetentionPolicy(no group)"] = attempt(lambda: bool(logs.delete_retention_policy(logGroupName=name)))


def s3_probe(url, r):
    s3 = client("s3", url)
    bucket = "probe-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    first = s3.put_object(Bucket=bucket, Key="state.json", Body=b"1", IfNoneMatch="*")
    r["s3.PutObject(If-None-Match, new)"] = "ETag" in first
    r["s3.PutObject(If-None-Match, exists)"] = attempt(
        lambda: bool(s3.put_object(Bucket=bucket, Key="state.json", Body=b"2", IfNoneMatch="*"))
    )
    second = s3.put_object(Bucket=bucket, Key="state.json", Body=b"2", IfMatch=first["ETag"])
    r["s3.PutObject(If-Match current)"] = "ETag" in second
    r["s3.PutObject(If-Match stale)"] = attempt(
        lambda: bool(s3.put_object(Bucket=bucket, Key="state.json", Body=b"3", IfMatch=first["ETag"]))
    )
    r["s3.PutObject(If-Match, no object)"] = attempt(
        lambda: bool(s3.put_object(Bucket=bucket, Key="none.json", Body=b"3", IfMatch=first["ETag"]))
    )
    r["s3.GetObject(no object)"] = attempt(lambda: bool(s3.get_object(Bucket=bucket, Key="none.json")))
    r["s3.HeadObject.etag-matches-put"] = s3.head_object(Bucket=bucket, Key="state.json")["ETag"] == second["ETag"]
    r["s3.GetObject(no bucket)"] = attempt(lambda: bool(s3.get_object(Bucket=bucket + "-none", Key="x")))
    # Many writers create the same lock at once: exactly one may win.
    def race(i):
        try:
            s3.put_object(Bucket=bucket, Key="race.lock", Body=str(i).encode(), IfNoneMatch="*")
            return "won"
        except botocore.exceptions.ClientError as e:
            return str(e.response["ResponseMetadata"]["HTTPStatusCode"])

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(race, range(16)))
    r["s3.PutObject(If-None-Match, 16 at once).winners"] = results.count("won")
    r["s3.PutObject(If-None-Match, 16 at once).loser-statuses"] = sorted(set(results) - {"won"})
    r["s3.DeleteObject(If-Match stale)"] = attempt(
        lambda: bool(s3.delete_object(Bucket=bucket, Key="state.json", IfMatch=first["ETag"]))
    )
    r["s3.DeleteObject(If-Match current)"] = attempt(
        lambda: bool(s3.delete_object(Bucket=bucket, Key="state.json", IfMatch=second["ETag"]))
    )
    for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        s3.delete_object(Bucket=bucket, Key=o["Key"])
    s3.delete_bucket(Bucket=bucket)


def main(url):
    account = client("sts", url).get_caller_identity()["Account"]
    r = {"sts.account": account}
    for name, probe in [
        ("ec2", lambda: ec2_probe(url, r)),
        ("iam", lambda: iam_probe(url, r)),
        ("route53", lambda: route53_probe(url, r)),
        ("acm", lambda: acm_probe(url, r, url)),
        ("logs", lambda: logs_probe(url, r, account)),
        ("s3", lambda: s3_probe(url, r)),
    ]:
        try:
            probe()
        except Exception as e:  # a probe that breaks half-way still reports what it saw
            r[f"{name}.probe-aborted"] = f"{type(e).__name__}: {e}"
    json.dump(r, sys.stdout, indent=1, sort_keys=True)
    print()


def diff(a_path, b_path):
    a, b = json.load(open(a_path)), json.load(open(b_path))
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            print(f"{k}\n    {a_path}: {json.dumps(a.get(k))}\n    {b_path}: {json.dumps(b.get(k))}")


if __name__ == "__main__":
    if sys.argv[1] == "--diff":
        diff(sys.argv[2], sys.argv[3])
    else:
        main(sys.argv[1])
