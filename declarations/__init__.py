"""Function declarations: SAM and CloudFormation templates read into what runs and deploys."""
